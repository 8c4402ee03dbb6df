/*
 * nvml_int.h - NVML telemetry of the CUDA backend (nvml.c).
 */
#ifndef GX_NVML_INT_H
#define GX_NVML_INT_H

#include "cuda_int.h"

/* Find the device in NVML (by UUID, else PCI bus id); -1 when NVML is
 * missing or does not know it. Loads NVML on first use. */
int gxc_nvml_open(gxc_dev *d, const char *uuid, const char *pci);
void gxc_nvml_close(gxc_dev *d);
/* Fill the NVML fields of t (others untouched); -1 when unavailable. */
int gxc_nvml_read(gxc_dev *d, gx_device_telemetry *t);

#endif
