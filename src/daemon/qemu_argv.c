/* QEMU's command line (qemu_argv.h). */
#include "qemu_argv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmconfig.h"

static void add(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s || a->n >= MAX_ARGS) {
		free(s);
		a->oom = true;
		return;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

void qemu_argv_free(struct argv_buf *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

int qemu_argv_build(struct ferryd *d, struct vm *vm, const char *incoming, struct argv_buf *a)
{
	json_t *cfg = vm->config, *disk, *nic;
	const char *name = vmconfig_name(cfg), *kernel, *machine;
	size_t i;

	machine = vmconfig_machine_type((int)json_integer_value(json_object_get(cfg, "config-version")));
	if (!machine)
		return -EINVAL;
	add(a, "%s", d->qemu_bin);
	/* no spawning, no new privileges, no obsolete system calls */
	add(a, "-sandbox");
	add(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	add(a, "-nodefaults");
	add(a, "-no-user-config");
	add(a, "-display");
	add(a, "none");
	add(a, "-vga");
	add(a, "none");
	add(a, "-msg");
	add(a, "timestamp=on");
	add(a, "-accel");
	add(a, "%s", d->kvm ? "kvm" : "tcg");
	add(a, "-machine");
	add(a, "%s", machine);
	add(a, "-cpu");
	add(a, "%s", vmconfig_cpu_model(cfg, d->kvm));
	add(a, "-m");
	add(a, "%lld", (long long)json_integer_value(json_object_get(cfg, "memory-mib")));
	add(a, "-smp");
	add(a, "%lld", (long long)json_integer_value(json_object_get(cfg, "vcpus")));
	add(a, "-name");
	add(a, "%s,process=ferry-%s", name, name);
	add(a, "-uuid");
	add(a, "%s", vmconfig_id(cfg));
	add(a, "-chardev");
	add(a, "socket,id=qmp,fd=%d,server=on,wait=off", FD_QMP);
	add(a, "-mon");
	add(a, "chardev=qmp,mode=control");
	add(a, "-add-fd");
	add(a, "fd=%d,set=1,opaque=console", FD_CONSOLE);
	add(a, "-chardev");
	add(a, "file,id=con0,path=/dev/fdset/1,append=on");
	add(a, "-serial");
	add(a, "chardev:con0");
	if ((kernel = json_string_value(json_object_get(cfg, "kernel")))) {
		const char *initrd = json_string_value(json_object_get(cfg, "initrd"));
		const char *cmdline = json_string_value(json_object_get(cfg, "cmdline"));
		add(a, "-kernel");
		add(a, "%s", kernel);
		if (initrd) {
			add(a, "-initrd");
			add(a, "%s", initrd);
		}
		add(a, "-append");
		/* Under TCG a Linux guest's TSC clocksource does not survive a live
		 * migration (seen with QEMU 7.2: hangs and hrtimer panics after the
		 * move); HPET does. Unless the administrator chose a clocksource. */
		if (!d->kvm && !(cmdline && strstr(cmdline, "clocksource=")))
			add(a, "%s%sclocksource=hpet", cmdline ? cmdline : "console=ttyS0", " ");
		else
			add(a, "%s", cmdline ? cmdline : "console=ttyS0");
	}
	json_array_foreach(json_object_get(cfg, "disks"), i, disk) {
		add(a, "-blockdev");
		add(a, "driver=file,filename=%s,node-name=file%zu,cache.direct=off",
		    json_string_value(json_object_get(disk, "path")), i);
		add(a, "-blockdev");
		add(a, "driver=%s,file=file%zu,node-name=disk%zu",
		    json_string_value(json_object_get(disk, "format")), i, i);
		add(a, "-device");
		add(a, "virtio-blk-pci,drive=disk%zu,id=vd%zu%s", i, i, i == 0 && !kernel ? ",bootindex=0" : "");
	}
	json_array_foreach(json_object_get(cfg, "nics"), i, nic) {
		char tap[16];
		tap_name(cfg, i, tap);
		add(a, "-netdev");
		/* ferryd opens the tap: QEMU's user may not open /dev/net/tun */
		add(a, "tap,id=net%zu,fd=%zu", i, FD_TAP0 + i);
		add(a, "-device");
		add(a, "virtio-net-pci,netdev=net%zu,mac=%s,id=nic%zu", i,
		    json_string_value(json_object_get(nic, "mac")), i);
	}
	if (incoming) {
		/* -S: the guest stays paused after the stream arrives until ferryd
		 * says "cont", so it never runs on both hosts at once. */
		add(a, "-S");
		add(a, "-incoming");
		add(a, "%s", incoming);
	}
	return a->oom ? -ENOMEM : 0;
}
