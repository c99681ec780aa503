/* VM configuration: a JSON object, validated and normalized here, the one
 * place that knows its fields. Persisted by ferryd, sent to the destination
 * of a move, checked again there. */
#pragma once
#include <jansson.h>
#include <stdbool.h>

#define VM_NAME_MAX 48
#define VM_MAX_DISKS 8
#define VM_MAX_NICS 8
#define VM_CONFIG_VERSION_MIN 5
#define VM_CONFIG_VERSION_MAX 7
#define VM_CONFIG_VERSION_DEFAULT 7
#define VM_COMPAT_CPU_MODEL "qemu64"

/* Validates cfg in place: fills defaults (id, MACs, formats, version),
 * rejects unknown fields and bad values. err names the field and the fix. */
int vmconfig_normalize(json_t *cfg, char *err, size_t errlen);

/* Machine type a configuration version maps to, e.g. 7 -> "pc-q35-7.2". */
const char *vmconfig_machine_type(int version);
/* The CPU model the VM needs: the baseline when processor compatibility is on. */
const char *vmconfig_cpu_model(json_t *cfg, bool kvm);

const char *vmconfig_name(json_t *cfg);
const char *vmconfig_id(json_t *cfg);
void vmconfig_new_id(char out[37]);
void vmconfig_new_mac(char out[18]);
