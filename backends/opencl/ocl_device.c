/* Platform and device choice (the issue: PATTN_OPENCL_PLATFORM and the device string, each
 * an index or a name substring; with neither, the first GPU, else the first device; "@gpu",
 * what PATTN_BACKEND=auto passes, only a GPU). A value that matches nothing is
 * PATTN_ERR_NO_DEVICE with the list of what was found. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl.h"

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

typedef struct found_dev {
  cl_platform_id platform;
  int            pindex;
  cl_device_id   device;
  cl_device_type type;
  char           name[256];
} found_dev;

typedef struct found {
  int            nplat;
  cl_platform_id plat[MAX_PLATFORMS];
  char           pname[MAX_PLATFORMS][256];
  int            ndev;
  found_dev      dev[MAX_DEVICES];
} found;

static int is_index(const char *s) {
  if (!s || !*s) return 0;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return 0;
  return 1;
}

static int matches(const char *sel, int index, const char *name) {
  if (is_index(sel)) return atoi(sel) == index;
  return strcasestr(name, sel) != NULL;
}

/* Enumerate platforms (all of them) and the devices of those that match plat_sel. */
static cl_int enumerate(found *f, const char *plat_sel) {
  memset(f, 0, sizeof *f);
  cl_uint np = 0;
  cl_int err = clGetPlatformIDs(MAX_PLATFORMS, f->plat, &np);
  if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: the ICD loader found no platform */) return CL_SUCCESS;
  if (err != CL_SUCCESS) return err;
  f->nplat = (int)(np < MAX_PLATFORMS ? np : MAX_PLATFORMS);
  for (int p = 0; p < f->nplat; p++) {
    if (clGetPlatformInfo(f->plat[p], CL_PLATFORM_NAME, sizeof f->pname[p], f->pname[p], NULL) != CL_SUCCESS)
      snprintf(f->pname[p], sizeof f->pname[p], "(unnamed)");
    if (plat_sel && *plat_sel && !matches(plat_sel, p, f->pname[p])) continue;
    cl_device_id ids[MAX_DEVICES];
    cl_uint nd = 0;
    err = clGetDeviceIDs(f->plat[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, ids, &nd);
    if (err == CL_DEVICE_NOT_FOUND) continue;
    if (err != CL_SUCCESS) continue; /* a broken platform must not hide the others */
    for (cl_uint d = 0; d < nd && f->ndev < MAX_DEVICES; d++) {
      found_dev *fd = &f->dev[f->ndev];
      fd->platform = f->plat[p];
      fd->pindex = p;
      fd->device = ids[d];
      if (clGetDeviceInfo(ids[d], CL_DEVICE_TYPE, sizeof fd->type, &fd->type, NULL) != CL_SUCCESS) fd->type = 0;
      if (clGetDeviceInfo(ids[d], CL_DEVICE_NAME, sizeof fd->name, fd->name, NULL) != CL_SUCCESS)
        snprintf(fd->name, sizeof fd->name, "(unnamed)");
      f->ndev++;
    }
  }
  return CL_SUCCESS;
}

static const char *type_name(cl_device_type t) {
  if (t & CL_DEVICE_TYPE_GPU) return "GPU";
  if (t & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
  if (t & CL_DEVICE_TYPE_CPU) return "CPU";
  return "other";
}

/* "platform 0: X; device 0: Y (GPU); ..." into buf */
static void describe(const found *f, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int p = 0; p < f->nplat && used < len; p++) {
    used += (size_t)snprintf(buf + used, len - used, "%splatform %d: %s", used ? "; " : "", p, f->pname[p]);
    for (int d = 0; d < f->ndev && used < len; d++)
      if (f->dev[d].pindex == p)
        used += (size_t)snprintf(buf + used, len - used, "; device %d: %s (%s)", d, f->dev[d].name,
                                 type_name(f->dev[d].type));
  }
  if (f->nplat == 0) snprintf(buf, len, "no OpenCL platform");
}

pattn_status ocl_choose_device(pattn_context *ctx, const char *device, cl_platform_id *platform,
                               cl_device_id *dev) {
  const char *plat_sel = getenv("PATTN_OPENCL_PLATFORM");
  found *f = malloc(sizeof *f);
  if (!f) return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: out of memory listing devices");
  cl_int err = enumerate(f, plat_sel);
  if (err != CL_SUCCESS) {
    free(f);
    return ocl_core->error(ctx, PATTN_ERR_NO_DEVICE, "opencl: clGetPlatformIDs failed: %s (%d)",
                           ocl_err_name(err), (int)err);
  }
  int pick = -1;
  if (device && strcmp(device, "@gpu") == 0) {
    /* PATTN_BACKEND=auto: only a GPU is worth taking over the CPU backend */
    for (int d = 0; d < f->ndev && pick < 0; d++)
      if (f->dev[d].type & CL_DEVICE_TYPE_GPU) pick = d;
  } else if (device && *device) {
    for (int d = 0; d < f->ndev && pick < 0; d++)
      if (matches(device, d, f->dev[d].name)) pick = d;
  } else {
    for (int d = 0; d < f->ndev && pick < 0; d++)
      if (f->dev[d].type & CL_DEVICE_TYPE_GPU) pick = d;
    if (pick < 0 && f->ndev > 0) pick = 0;
  }
  if (pick < 0) {
    /* list everything, not only the filtered platforms, so the user sees what exists */
    found *all = malloc(sizeof *all);
    char list[2048];
    if (all && enumerate(all, NULL) == CL_SUCCESS) describe(all, list, sizeof list);
    else describe(f, list, sizeof list);
    free(all);
    pattn_status s = ocl_core->error(ctx, PATTN_ERR_NO_DEVICE,
        "opencl: no device matches (PATTN_OPENCL_PLATFORM=%s, device=%s); found: %s",
        plat_sel ? plat_sel : "(unset)", device && *device ? device : "(default)", list);
    free(f);
    return s;
  }
  *platform = f->dev[pick].platform;
  *dev = f->dev[pick].device;
  ocl_core->log(PATTN_LOG_INFO, "opencl: using device %d: %s (platform %s)", pick, f->dev[pick].name,
                f->pname[f->dev[pick].pindex]);
  free(f);
  return PATTN_OK;
}

pattn_status ocl_list_devices(char *why, size_t why_len, char *devices, size_t devices_len) {
  found *f = malloc(sizeof *f);
  if (!f) {
    if (why && why_len) snprintf(why, why_len, "out of memory");
    return PATTN_ERR_OUT_OF_MEMORY;
  }
  cl_int err = enumerate(f, getenv("PATTN_OPENCL_PLATFORM"));
  pattn_status s = PATTN_OK;
  if (err != CL_SUCCESS) {
    if (why && why_len) snprintf(why, why_len, "clGetPlatformIDs failed: %s (%d)", ocl_err_name(err), (int)err);
    s = PATTN_ERR_NO_DEVICE;
  } else if (f->ndev == 0) {
    if (why && why_len) {
      char list[1024];
      describe(f, list, sizeof list);
      snprintf(why, why_len, "no OpenCL device (%s)", list);
    }
    s = PATTN_ERR_NO_DEVICE;
  }
  if (devices && devices_len) {
    size_t used = 0;
    devices[0] = '\0';
    for (int d = 0; d < f->ndev && used < devices_len; d++)
      used += (size_t)snprintf(devices + used, devices_len - used, "%s\n", f->dev[d].name);
  }
  free(f);
  return s;
}
