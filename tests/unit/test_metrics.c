/* The metrics exposition from counters alone, the endpoint's request parser
 * and its address: no sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "metrics.h"

static char *render(const struct metrics *m, const struct metrics_now *now)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(m, now, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	return text;
}

/* The line that starts with prefix followed by a space: its value. */
static const char *value_of(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		if (!strncmp(l, prefix, n) && l[n] == ' ')
			return l + n + 1;
		if (!strchr(l, '\n'))
			break;
	}
	fail_msg("no line %s", prefix);
	return NULL;
}

static void assert_value(const char *text, const char *prefix, const char *want)
{
	const char *v = value_of(text, prefix);

	assert_true(!strncmp(v, want, strlen(want)) && v[strlen(want)] == '\n');
}

static void test_format(void **state)
{
	struct metrics m = {0};
	struct metrics_now now = {0};
	char *text;

	(void)state;
	text = render(&m, &now);
	/* every line: a # HELP/# TYPE comment or "name{labels} value"; the
	 * samples of a family follow its TYPE line, and every name is ferry_ */
	for (char *l = text, *nl; *l; l = nl + 1) {
		nl = strchr(l, '\n');
		assert_non_null(nl); /* ends with a newline */
		if (l[0] == '#') {
			assert_true(!strncmp(l, "# HELP ferry_", 13) || !strncmp(l, "# TYPE ferry_", 13));
			continue;
		}
		assert_true(!strncmp(l, "ferry_", 6));
		assert_non_null(memchr(l, ' ', (size_t)(nl - l)));
	}
	assert_non_null(strstr(text, "# TYPE ferry_moves_started_total counter\n"));
	assert_non_null(strstr(text, "# TYPE ferry_move_pause_seconds histogram\n"));
	assert_non_null(strstr(text, "# TYPE ferry_moves_queued gauge\n"));
	assert_non_null(strstr(text, "# TYPE ferry_moves_active gauge\n"));
	assert_value(text, "ferry_moves_started_total{kind=\"move\"}", "0");
	assert_value(text, "ferry_moves_failed_total{kind=\"move-storage\",stage=\"other\"}", "0");
	assert_value(text, "ferry_move_pause_seconds_bucket{le=\"+Inf\"}", "0");
	assert_value(text, "ferry_move_pause_seconds_count", "0");
	free(text);
}

static void test_counters(void **state)
{
	struct metrics m = {0};
	struct metrics_now now = {.bytes_sending = 500, .queued = 2, .active = {1, 0}, .incoming = 3};
	char *text;

	(void)state;
	metrics_started(&m, "move");
	metrics_started(&m, "move");
	metrics_started(&m, "move-storage");
	metrics_started(&m, "something-else"); /* not counted */
	metrics_completed(&m, "move", 1000, 40);
	metrics_failed(&m, "move", "memory", false, 200);
	metrics_failed(&m, "move", "memory", true, 7);
	metrics_failed(&m, "move-storage", "no such stage", false, 0);
	text = render(&m, &now);
	assert_value(text, "ferry_moves_started_total{kind=\"move\"}", "2");
	assert_value(text, "ferry_moves_started_total{kind=\"move-storage\"}", "1");
	assert_value(text, "ferry_moves_completed_total{kind=\"move\"}", "1");
	assert_value(text, "ferry_moves_failed_total{kind=\"move\",stage=\"memory\"}", "1");
	assert_value(text, "ferry_moves_failed_total{kind=\"move\",stage=\"setup\"}", "0");
	assert_value(text, "ferry_moves_failed_total{kind=\"move-storage\",stage=\"other\"}", "1");
	assert_value(text, "ferry_moves_cancelled_total{kind=\"move\"}", "1");
	assert_value(text, "ferry_move_bytes_sent_total", "1707"); /* ended moves + those under way */
	assert_value(text, "ferry_moves_queued", "2");
	assert_value(text, "ferry_moves_active{kind=\"move\"}", "1");
	assert_value(text, "ferry_moves_active{kind=\"move-storage\"}", "0");
	assert_value(text, "ferry_moves_active{kind=\"incoming\"}", "3");
	assert_null(strstr(text, "something-else"));
	free(text);
}

static void test_histogram(void **state)
{
	struct metrics m = {0};
	struct metrics_now now = {0};
	char *text;

	(void)state;
	metrics_completed(&m, "move", 0, 10);    /* on a bound: in that bucket */
	metrics_completed(&m, "move", 0, 11);
	metrics_completed(&m, "move", 0, 300);
	metrics_completed(&m, "move", 0, 60000); /* beyond the last bound */
	metrics_completed(&m, "move", 0, -1);    /* no downtime reported: not observed */
	text = render(&m, &now);
	/* buckets are cumulative */
	assert_value(text, "ferry_move_pause_seconds_bucket{le=\"0.01\"}", "1");
	assert_value(text, "ferry_move_pause_seconds_bucket{le=\"0.025\"}", "2");
	assert_value(text, "ferry_move_pause_seconds_bucket{le=\"0.25\"}", "2");
	assert_value(text, "ferry_move_pause_seconds_bucket{le=\"0.5\"}", "3");
	assert_value(text, "ferry_move_pause_seconds_bucket{le=\"5\"}", "3");
	assert_value(text, "ferry_move_pause_seconds_bucket{le=\"+Inf\"}", "4");
	assert_value(text, "ferry_move_pause_seconds_sum", "60.321");
	assert_value(text, "ferry_move_pause_seconds_count", "4");
	assert_value(text, "ferry_moves_completed_total{kind=\"move\"}", "5");
	/* +Inf comes last, then _sum and _count */
	assert_true(strstr(text, "le=\"5\"") < strstr(text, "le=\"+Inf\""));
	assert_true(strstr(text, "le=\"+Inf\"") < strstr(text, "ferry_move_pause_seconds_sum"));
	assert_true(strstr(text, "ferry_move_pause_seconds_sum") < strstr(text, "ferry_move_pause_seconds_count"));
	free(text);
}

static enum metrics_request parse(const char *s) { return metrics_parse_request(s, strlen(s)); }

static void test_request_good(void **state)
{
	(void)state;
	assert_int_equal(parse("GET /metrics HTTP/1.0\r\n\r\n"), METRICS_REQ_OK);
	/* what Prometheus sends */
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: 10.77.0.11:9477\r\nUser-Agent: Prometheus/2.45.0\r\n"
			       "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
			       "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n"),
			 METRICS_REQ_OK);
	/* and urllib */
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: [::1]:9477\r\n"
			       "User-Agent: Python-urllib/3.11\r\nConnection: close\r\n\r\n"),
			 METRICS_REQ_OK);
}

static void test_request_other(void **state)
{
	(void)state;
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n"), METRICS_REQ_NOT_FOUND);
	assert_int_equal(parse("GET /metrics/ HTTP/1.0\r\n\r\n"), METRICS_REQ_NOT_FOUND);
	assert_int_equal(parse("GET /metricsx HTTP/1.0\r\n\r\n"), METRICS_REQ_NOT_FOUND);
	assert_int_equal(parse("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), METRICS_REQ_NOT_FOUND);
	assert_int_equal(parse("POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n"), METRICS_REQ_BAD_METHOD);
	assert_int_equal(parse("HEAD /metrics HTTP/1.1\r\n\r\n"), METRICS_REQ_BAD_METHOD);
}

static void test_request_incomplete(void **state)
{
	(void)state;
	assert_int_equal(parse(""), METRICS_REQ_INCOMPLETE);
	assert_int_equal(parse("GET /met"), METRICS_REQ_INCOMPLETE);
	assert_int_equal(parse("GET /metrics HTTP/1.0\r"), METRICS_REQ_INCOMPLETE);
	assert_int_equal(parse("GET /metrics HTTP/1.0\r\nHost: x\r\n"), METRICS_REQ_INCOMPLETE);
}

static void test_request_bad(void **state)
{
	static const char *const bad[] = {
		"GET /metrics HTTP/1.0\n\n",             /* bare LF */
		"GET /metrics HTTP/1.0\r\n\n\r\n",
		"GET /metrics\r\n\r\n",                  /* HTTP/0.9 */
		"GET /metrics HTTP/2.0\r\n\r\n",
		"GET /metrics HTTP/1.0 \r\n\r\n",
		"GET  /metrics HTTP/1.0\r\n\r\n",        /* two spaces */
		"GET metrics HTTP/1.0\r\n\r\n",          /* not a path */
		"get /metrics HTTP/1.0\r\n\r\n",
		" GET /metrics HTTP/1.0\r\n\r\n",
		"GET\t/metrics HTTP/1.0\r\n\r\n",
		"GET /metrics HTTP/1.0\r\nNo colon\r\n\r\n",
		"GET /metrics HTTP/1.0\r\n: empty name\r\n\r\n",
		"GET /metrics HTTP/1.0\r\nHost: a\r\n folded\r\n\r\n",
		"GET /m\x01trics HTTP/1.0\r\n\r\n",
		"GET /metrics HTTP/1.0\r\nX: \xff\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01",             /* TLS: refused before a blank line */
	};
	static const char nul[] = "GET /metrics HTTP/1.0\r\nX: a\0b\r\n\r\n";
	char big[METRICS_REQ_MAX + 64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i]), METRICS_REQ_BAD);
	assert_int_equal(metrics_parse_request(nul, sizeof(nul) - 1), METRICS_REQ_BAD);
	/* oversized: no blank line within the limit, or a head beyond it */
	memset(big, 'a', sizeof(big));
	assert_int_equal(metrics_parse_request(big, METRICS_REQ_MAX - 1), METRICS_REQ_INCOMPLETE);
	assert_int_equal(metrics_parse_request(big, METRICS_REQ_MAX), METRICS_REQ_BAD);
	memcpy(big, "GET /metrics HTTP/1.0\r\nX-Pad: ", 30);
	memcpy(big + METRICS_REQ_MAX, "\r\n\r\n", 4);
	assert_int_equal(metrics_parse_request(big, METRICS_REQ_MAX + 4), METRICS_REQ_BAD);
	memcpy(big + METRICS_REQ_MAX - 4, "\r\n\r\n", 4);
	assert_int_equal(metrics_parse_request(big, METRICS_REQ_MAX), METRICS_REQ_OK);
}

static void test_addr(void **state)
{
	static const char *const bad[] = {
		"", "10.77.0.11", "10.77.0.11:", "10.77.0.11:0", "10.77.0.11:65536", "10.77.0.11:94x7",
		":9477", "host1.lab.test:9477", "::1:9477", "[::1]9477", "[::1]", "[10.77.0.11]:9477",
		"[]:9477", "10.77.0.256:9477", "10.77.0.11:+9477", "[fe80::1%eth0]:9477",
	};
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	char buf[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(metrics_parse_addr("10.77.0.11:9477", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(*in));
	assert_int_equal(ntohs(in->sin_port), 9477);
	assert_string_equal(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)), "10.77.0.11");
	assert_int_equal(metrics_parse_addr("[::1]:9477", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(*in6));
	assert_int_equal(ntohs(in6->sin6_port), 9477);
	assert_int_equal(metrics_parse_addr("[2001:db8::11]:1", &ss, &len), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(metrics_parse_addr(bad[i], &ss, &len), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),         cmocka_unit_test(test_counters),
		cmocka_unit_test(test_histogram),      cmocka_unit_test(test_request_good),
		cmocka_unit_test(test_request_other),  cmocka_unit_test(test_request_incomplete),
		cmocka_unit_test(test_request_bad),    cmocka_unit_test(test_addr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
