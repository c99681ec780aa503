/* What a client refused by gss_server_accept is told (review L12): the
 * causes it can fix, and nothing about this host's keytab or principals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <gssapi/gssapi.h>
#include <krb5.h>

#include "gss.h"

static void refusal(uint32_t maj, krb5_error_code k, char *buf, size_t len)
{
	gss_server_refusal(maj, (uint32_t)k, "host2.example.com", buf, len);
	assert_null(strstr(buf, "keytab"));
	assert_null(strstr(buf, "ferry/"));
	assert_null(strstr(buf, "samba-tool"));
	assert_null(strstr(buf, "/etc"));
}

static void host_details_stay_in_the_log(void **state)
{
	char buf[512];

	(void)state;
	refusal(GSS_S_FAILURE, KRB5_KT_NOTFOUND, buf, sizeof(buf));
	assert_non_null(strstr(buf, "log"));
	refusal(GSS_S_FAILURE, KRB5KRB_AP_ERR_MODIFIED, buf, sizeof(buf));
	assert_non_null(strstr(buf, "log"));
	refusal(GSS_S_NO_CRED, 0, buf, sizeof(buf));
	assert_non_null(strstr(buf, "host2.example.com"));
}

static void client_causes_are_said(void **state)
{
	char buf[512];

	(void)state;
	refusal(GSS_S_FAILURE, KRB5KRB_AP_ERR_SKEW, buf, sizeof(buf));
	assert_non_null(strstr(buf, "clocks"));
	refusal(GSS_S_FAILURE, KRB5KRB_AP_ERR_TKT_EXPIRED, buf, sizeof(buf));
	assert_non_null(strstr(buf, "kinit"));
	refusal(GSS_S_FAILURE, KRB5KRB_AP_ERR_REPEAT, buf, sizeof(buf));
	assert_non_null(strstr(buf, "replayed"));
	refusal(GSS_S_DUPLICATE_TOKEN, 0, buf, sizeof(buf));
	assert_non_null(strstr(buf, "replayed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(host_details_stay_in_the_log),
		cmocka_unit_test(client_causes_are_said),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
