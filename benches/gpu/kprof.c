/*
 * kprof: a kernel-level GPU profile of any CUDA program, without Nsight.
 *
 * Build:  cc -O2 -shared -fPIC -o libkprof.so benches/gpu/kprof.c -ldl
 * Use:    CUDA_INJECTION64_PATH=$PWD/libkprof.so KPROF_OUT=prof.tsv KPROF_LABEL=name PROGRAM ...
 *
 * The CUDA driver loads the library named by CUDA_INJECTION64_PATH and calls its
 * InitializeInjection(); this one loads CUPTI (KPROF_CUPTI, else libcupti.so.13/.12/.so from the
 * library path) and records the GPU start and end of every kernel, memory copy and memset.
 * Only work between cuProfilerStart() and cuProfilerStop() (cudaProfilerStart/Stop,
 * torch.cuda.profiler.start/stop) is counted, the way `nsys --capture-range=cudaProfilerApi`
 * does; each such range gives one table appended to KPROF_OUT (default: standard error):
 *
 *   range <label>#<n>  span_ns <first start to last end>  busy_ns <union of GPU activity>
 *   kernel <count> <total ns> <name>       (every kernel name, by total time)
 *   memcpy <count> <total ns> <bytes> <HtoD|DtoH|DtoD|HtoH|other>
 *   memset <count> <total ns> <bytes>
 *   end
 *
 * benches/gpu/kprof.py summarises these tables. No CUDA or CUPTI headers are needed: the few
 * declarations used are written out below (the record layouts have been stable since CUDA 11
 * and are checked at run time: a kernel record whose times are out of order stops the profile).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUptiResult; /* CUPTI_SUCCESS = 0 */
typedef struct { int kind; } CUpti_Activity;
typedef void (*BufferRequested)(uint8_t **buffer, size_t *size, size_t *max_records);
typedef void (*BufferCompleted)(void *ctx, uint32_t stream, uint8_t *buffer, size_t size,
                                size_t valid);
typedef void (*CallbackFn)(void *userdata, int domain, uint32_t cbid, const void *cbdata);

enum {
  KIND_MEMCPY = 1,
  KIND_MEMSET = 2,
  KIND_KERNEL = 3,
  KIND_CONCURRENT_KERNEL = 10,
  DOMAIN_DRIVER_API = 1,
  CBID_cuProfilerStart = 308, /* cupti_driver_cbid.h */
  CBID_cuProfilerStop = 309,
  API_EXIT = 1, /* CUpti_ApiCallbackSite */
};

/* CUpti_CallbackData: the callback site is its first field. */
typedef struct { int callbackSite; } CallbackData;

/* CUpti_ActivityKernel4..11 share this prefix. */
typedef struct {
  int32_t kind;
  uint8_t cache_config, shared_memory_config;
  uint16_t registers_per_thread;
  int32_t partitioned_requested, partitioned_executed;
  uint64_t start, end, completed;
  uint32_t device_id, context_id, stream_id;
  int32_t grid[3], block[3];
  int32_t static_shared, dynamic_shared;
  uint32_t local_per_thread, local_total, correlation_id;
  int64_t grid_id;
  const char *name;
} __attribute__((packed, aligned(8))) KernelRecord;

/* CUpti_ActivityMemcpy5/6 and CUpti_ActivityMemset4 prefixes. */
typedef struct {
  int32_t kind;
  uint8_t copy_kind, src_kind, dst_kind, flags;
  uint64_t bytes, start, end;
} __attribute__((packed, aligned(8))) MemcpyRecord;
typedef struct {
  int32_t kind;
  uint32_t value;
  uint64_t bytes, start, end;
} __attribute__((packed, aligned(8))) MemsetRecord;

static CUptiResult (*p_register_callbacks)(BufferRequested, BufferCompleted);
static CUptiResult (*p_enable)(int);
static CUptiResult (*p_flush_all)(uint32_t);
static CUptiResult (*p_next_record)(uint8_t *, size_t, CUpti_Activity **);
static CUptiResult (*p_subscribe)(void **, CallbackFn, void *);
static CUptiResult (*p_enable_callback)(uint32_t, void *, int, uint32_t);
static CUptiResult (*p_timestamp)(uint64_t *);

#define SLOTS 8192
typedef struct {
  char *name;
  uint64_t count, total;
} Entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static Entry kernels[SLOTS];
static uint64_t copies[5][3]; /* HtoD, DtoH, DtoD, HtoH, other: count, ns, bytes */
static uint64_t sets[3];
static int recording, broken, range_no;
static uint64_t range_start, range_stop, first, last;
/* Busy time: union of [start, end) intervals, kept as a sorted list merged at report time. */
static uint64_t (*spans)[2];
static size_t n_spans, cap_spans;

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static void add_span(uint64_t s, uint64_t e) {
  if (s < range_start || e > range_stop || e < s) return;
  if (n_spans == cap_spans) {
    size_t cap = cap_spans ? cap_spans * 2 : 65536;
    void *p = realloc(spans, cap * sizeof *spans);
    if (!p) return;
    spans = p;
    cap_spans = cap;
  }
  spans[n_spans][0] = s;
  spans[n_spans][1] = e;
  n_spans++;
  if (!first || s < first) first = s;
  if (e > last) last = e;
}

static int in_range(uint64_t s, uint64_t e) { return s >= range_start && e <= range_stop && e >= s; }

static void on_kernel(const KernelRecord *k) {
  if (k->end < k->start || !k->name) {
    broken = 1;
    return;
  }
  if (!in_range(k->start, k->end)) return;
  add_span(k->start, k->end);
  uint64_t h = hash(k->name);
  for (size_t i = 0; i < SLOTS; i++) {
    Entry *e = &kernels[(h + i) % SLOTS];
    if (!e->name) e->name = strdup(k->name);
    if (e->name && strcmp(e->name, k->name) == 0) {
      e->count++;
      e->total += k->end - k->start;
      return;
    }
  }
}

static void buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
  *size = 8u << 20;
  *buffer = aligned_alloc(8, *size);
  *max_records = 0;
}

static void buffer_completed(void *ctx, uint32_t stream, uint8_t *buffer, size_t size,
                             size_t valid) {
  (void)ctx;
  (void)stream;
  (void)size;
  CUpti_Activity *r = NULL;
  pthread_mutex_lock(&lock);
  while (valid && p_next_record(buffer, valid, &r) == 0) {
    if (r->kind == KIND_CONCURRENT_KERNEL || r->kind == KIND_KERNEL) {
      on_kernel((const KernelRecord *)r);
    } else if (r->kind == KIND_MEMCPY) {
      const MemcpyRecord *m = (const MemcpyRecord *)r;
      if (!in_range(m->start, m->end)) continue;
      add_span(m->start, m->end);
      int k = m->copy_kind == 1 ? 0 : m->copy_kind == 2 ? 1 : m->copy_kind == 8 ? 2
              : m->copy_kind == 9 ? 3 : 4;
      copies[k][0]++;
      copies[k][1] += m->end - m->start;
      copies[k][2] += m->bytes;
    } else if (r->kind == KIND_MEMSET) {
      const MemsetRecord *m = (const MemsetRecord *)r;
      if (!in_range(m->start, m->end)) continue;
      add_span(m->start, m->end);
      sets[0]++;
      sets[1] += m->end - m->start;
      sets[2] += m->bytes;
    }
  }
  pthread_mutex_unlock(&lock);
  free(buffer);
}

static int by_total(const void *a, const void *b) {
  const Entry *x = a, *y = b;
  return (x->total < y->total) - (x->total > y->total);
}

static int by_start(const void *a, const void *b) {
  const uint64_t *x = a, *y = b;
  return (x[0] > y[0]) - (x[0] < y[0]);
}

static void report(void) {
  const char *path = getenv("KPROF_OUT");
  const char *label = getenv("KPROF_LABEL");
  FILE *f = path ? fopen(path, "a") : NULL;
  if (!f) f = stderr;
  qsort(spans, n_spans, sizeof *spans, by_start);
  uint64_t busy = 0, cur_s = 0, cur_e = 0;
  for (size_t i = 0; i < n_spans; i++) {
    if (i == 0 || spans[i][0] > cur_e) {
      busy += cur_e - cur_s;
      cur_s = spans[i][0];
      cur_e = spans[i][1];
    } else if (spans[i][1] > cur_e) {
      cur_e = spans[i][1];
    }
  }
  busy += cur_e - cur_s;
  fprintf(f, "range\t%s#%d\tspan_ns\t%llu\tbusy_ns\t%llu\twall_ns\t%llu%s\n",
          label ? label : "-", range_no, (unsigned long long)(last - first),
          (unsigned long long)busy, (unsigned long long)(range_stop - range_start),
          broken ? "\tBROKEN-RECORDS" : "");
  qsort(kernels, SLOTS, sizeof *kernels, by_total);
  for (size_t i = 0; i < SLOTS && kernels[i].name; i++) {
    fprintf(f, "kernel\t%llu\t%llu\t%s\n", (unsigned long long)kernels[i].count,
            (unsigned long long)kernels[i].total, kernels[i].name);
  }
  static const char *names[5] = {"HtoD", "DtoH", "DtoD", "HtoH", "other"};
  for (int k = 0; k < 5; k++) {
    if (copies[k][0]) {
      fprintf(f, "memcpy\t%llu\t%llu\t%llu\t%s\n", (unsigned long long)copies[k][0],
              (unsigned long long)copies[k][1], (unsigned long long)copies[k][2], names[k]);
    }
  }
  if (sets[0]) {
    fprintf(f, "memset\t%llu\t%llu\t%llu\n", (unsigned long long)sets[0],
            (unsigned long long)sets[1], (unsigned long long)sets[2]);
  }
  fprintf(f, "end\n");
  if (f != stderr) fclose(f);
  for (size_t i = 0; i < SLOTS; i++) free(kernels[i].name);
  memset(kernels, 0, sizeof kernels);
  memset(copies, 0, sizeof copies);
  memset(sets, 0, sizeof sets);
  n_spans = 0;
  first = last = 0;
}

static void on_api(void *userdata, int domain, uint32_t cbid, const void *cbdata) {
  (void)userdata;
  if (domain != DOMAIN_DRIVER_API || ((const CallbackData *)cbdata)->callbackSite != API_EXIT)
    return;
  uint64_t now = 0;
  p_timestamp(&now);
  if (cbid == CBID_cuProfilerStart && !recording) {
    p_flush_all(1); /* drops what ran before the range: its records fall outside it */
    pthread_mutex_lock(&lock);
    range_start = now;
    range_stop = UINT64_MAX;
    recording = 1;
    pthread_mutex_unlock(&lock);
  } else if (cbid == CBID_cuProfilerStop && recording) {
    /* cuProfilerStop synchronises nothing: callers synchronise before it. */
    pthread_mutex_lock(&lock);
    range_stop = now;
    pthread_mutex_unlock(&lock);
    p_flush_all(1);
    pthread_mutex_lock(&lock);
    range_no++;
    report();
    recording = 0;
    range_start = UINT64_MAX;
    range_stop = 0;
    pthread_mutex_unlock(&lock);
  }
}

#define LOAD(sym, name)                                        \
  do {                                                         \
    *(void **)&sym = dlsym(lib, name);                         \
    if (!sym) {                                                \
      fprintf(stderr, "kprof: %s missing in CUPTI\n", name);   \
      return 1;                                                \
    }                                                          \
  } while (0)

int InitializeInjection(void) {
  const char *want = getenv("KPROF_CUPTI");
  const char *tries[] = {want, "libcupti.so.13", "libcupti.so.12", "libcupti.so"};
  void *lib = NULL;
  for (size_t i = 0; i < 4 && !lib; i++) {
    if (tries[i]) lib = dlopen(tries[i], RTLD_NOW | RTLD_GLOBAL);
  }
  if (!lib) {
    fprintf(stderr, "kprof: CUPTI not found (set KPROF_CUPTI to libcupti.so's path)\n");
    return 1;
  }
  LOAD(p_register_callbacks, "cuptiActivityRegisterCallbacks");
  LOAD(p_enable, "cuptiActivityEnable");
  LOAD(p_flush_all, "cuptiActivityFlushAll");
  LOAD(p_next_record, "cuptiActivityGetNextRecord");
  LOAD(p_subscribe, "cuptiSubscribe");
  LOAD(p_enable_callback, "cuptiEnableCallback");
  LOAD(p_timestamp, "cuptiGetTimestamp");
  range_start = UINT64_MAX;
  range_stop = 0;
  void *subscriber = NULL;
  if (p_register_callbacks(buffer_requested, buffer_completed) ||
      p_subscribe(&subscriber, on_api, NULL) ||
      p_enable_callback(1, subscriber, DOMAIN_DRIVER_API, CBID_cuProfilerStart) ||
      p_enable_callback(1, subscriber, DOMAIN_DRIVER_API, CBID_cuProfilerStop) ||
      p_enable(KIND_CONCURRENT_KERNEL) || p_enable(KIND_MEMCPY) || p_enable(KIND_MEMSET)) {
    fprintf(stderr, "kprof: CUPTI refused to set up\n");
    return 1;
  }
  fprintf(stderr, "kprof: recording kernels between cuProfilerStart and cuProfilerStop\n");
  return 1;
}
