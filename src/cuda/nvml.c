/*
 * nvml.c - GPU telemetry through NVML, loaded at run time with dlopen so
 * the backend has no link-time dependency on the driver's management
 * library. Without libnvidia-ml.so.1 every field reads as "unknown" (< 0)
 * except what the CUDA runtime itself can tell (memory, pool).
 *
 * Only the few entry points used are declared here, with NVML's documented
 * C ABI (opaque handles, plain structs of unsigned integers).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cuda_int.h"
#include "nvml_int.h"

typedef int nvmlReturn_t; /* 0 = NVML_SUCCESS */
typedef void *nvmlDevice_t;
typedef void *nvmlEventSet_t;
typedef struct {
    unsigned int gpu, memory;
} nvml_util_t;
typedef struct {
    unsigned long long total, free, used;
} nvml_mem_t;
typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType, eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} nvml_event_t;

#define NVML_TEMPERATURE_GPU 0
#define NVML_CLOCK_SM 1
#define NVML_CLOCK_MEM 2
#define NVML_MEMORY_ERROR_TYPE_CORRECTED 0
#define NVML_MEMORY_ERROR_TYPE_UNCORRECTED 1
#define NVML_VOLATILE_ECC 0
#define NVML_EVENT_XID 0x8ull

static struct {
    void *lib;
    int ok;
    nvmlReturn_t (*init)(void);
    nvmlReturn_t (*by_uuid)(const char *, nvmlDevice_t *);
    nvmlReturn_t (*by_pci)(const char *, nvmlDevice_t *);
    nvmlReturn_t (*util)(nvmlDevice_t, nvml_util_t *);
    nvmlReturn_t (*mem)(nvmlDevice_t, nvml_mem_t *);
    nvmlReturn_t (*temp)(nvmlDevice_t, int, unsigned int *);
    nvmlReturn_t (*power)(nvmlDevice_t, unsigned int *);
    nvmlReturn_t (*clock)(nvmlDevice_t, int, unsigned int *);
    nvmlReturn_t (*ecc)(nvmlDevice_t, int, int, unsigned long long *);
    nvmlReturn_t (*ev_create)(nvmlEventSet_t *);
    nvmlReturn_t (*ev_register)(nvmlDevice_t, unsigned long long, nvmlEventSet_t);
    nvmlReturn_t (*ev_wait)(nvmlEventSet_t, nvml_event_t *, unsigned int);
    nvmlReturn_t (*ev_free)(nvmlEventSet_t);
    nvmlReturn_t (*shutdown)(void);
} nv;

static pthread_once_t nv_once = PTHREAD_ONCE_INIT;

static void *sym(const char *a, const char *b) {
    void *p = dlsym(nv.lib, a);
    return p ? p : (b ? dlsym(nv.lib, b) : NULL);
}

static void nv_load(void) {
    nv.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!nv.lib) return;
    *(void **)&nv.init = sym("nvmlInit_v2", "nvmlInit");
    *(void **)&nv.by_uuid = sym("nvmlDeviceGetHandleByUUID", NULL);
    *(void **)&nv.by_pci = sym("nvmlDeviceGetHandleByPciBusId_v2", "nvmlDeviceGetHandleByPciBusId");
    *(void **)&nv.util = sym("nvmlDeviceGetUtilizationRates", NULL);
    *(void **)&nv.mem = sym("nvmlDeviceGetMemoryInfo", NULL);
    *(void **)&nv.temp = sym("nvmlDeviceGetTemperature", NULL);
    *(void **)&nv.power = sym("nvmlDeviceGetPowerUsage", NULL);
    *(void **)&nv.clock = sym("nvmlDeviceGetClockInfo", NULL);
    *(void **)&nv.ecc = sym("nvmlDeviceGetTotalEccErrors", NULL);
    *(void **)&nv.ev_create = sym("nvmlEventSetCreate", NULL);
    *(void **)&nv.ev_register = sym("nvmlDeviceRegisterEvents", NULL);
    *(void **)&nv.ev_wait = sym("nvmlEventSetWait_v2", "nvmlEventSetWait");
    *(void **)&nv.ev_free = sym("nvmlEventSetFree", NULL);
    *(void **)&nv.shutdown = sym("nvmlShutdown", NULL);
    nv.ok = nv.init && nv.init() == 0;
}

int gxc_nvml_open(gxc_dev *d, const char *uuid, const char *pci) {
    pthread_once(&nv_once, nv_load);
    if (!nv.ok) return -1;
    nvmlDevice_t h = NULL;
    if (!(nv.by_uuid && uuid[0] && nv.by_uuid(uuid, &h) == 0) && !(nv.by_pci && nv.by_pci(pci, &h) == 0))
        return -1;
    d->nvml = h;
    /* Xid errors: may be refused without privileges; then xid_last stays -1 */
    nvmlEventSet_t set = NULL;
    if (nv.ev_create && nv.ev_register && nv.ev_wait && nv.ev_create(&set) == 0) {
        if (nv.ev_register(h, NVML_EVENT_XID, set) == 0) d->nvml_events = set;
        else if (nv.ev_free) nv.ev_free(set);
    }
    atomic_store(&d->xid_last, d->nvml_events ? 0 : -1);
    return 0;
}

void gxc_nvml_close(gxc_dev *d) {
    if (d->nvml_events && nv.ev_free) nv.ev_free(d->nvml_events);
    d->nvml_events = NULL;
    d->nvml = NULL;
}

int gxc_nvml_read(gxc_dev *d, gx_device_telemetry *t) {
    if (!nv.ok || !d->nvml) return -1;
    nvmlDevice_t h = d->nvml;
    nvml_util_t u;
    if (nv.util && nv.util(h, &u) == 0) {
        t->util_pct = u.gpu;
        t->mem_util_pct = u.memory;
    }
    nvml_mem_t m;
    if (nv.mem && nv.mem(h, &m) == 0) {
        t->mem_used = (int64_t)m.used;
        t->mem_total = (int64_t)m.total;
    }
    unsigned int v;
    if (nv.temp && nv.temp(h, NVML_TEMPERATURE_GPU, &v) == 0) t->temp_c = v;
    if (nv.power && nv.power(h, &v) == 0) t->power_w = v / 1000.0;
    if (nv.clock && nv.clock(h, NVML_CLOCK_SM, &v) == 0) t->sm_clock_mhz = v;
    if (nv.clock && nv.clock(h, NVML_CLOCK_MEM, &v) == 0) t->mem_clock_mhz = v;
    unsigned long long e;
    if (nv.ecc && nv.ecc(h, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC, &e) == 0)
        t->ecc_corrected = (int64_t)e;
    if (nv.ecc && nv.ecc(h, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, &e) == 0)
        t->ecc_uncorrected = (int64_t)e;
    if (d->nvml_events) {
        nvml_event_t ev;
        /* drain pending events without blocking */
        for (int i = 0; i < 16 && nv.ev_wait(d->nvml_events, &ev, 0) == 0; i++)
            if (ev.eventType & NVML_EVENT_XID) {
                atomic_store(&d->xid_last, (int64_t)ev.eventData);
                atomic_fetch_add(&d->xid_count, 1);
            }
    }
    t->xid_last = atomic_load(&d->xid_last);
    t->xid_count = d->nvml_events ? atomic_load(&d->xid_count) : -1;
    return 0;
}
