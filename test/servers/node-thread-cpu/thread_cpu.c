/*
 * threadCpuNs(): CLOCK_THREAD_CPUTIME_ID for Node, the precise per-thread CPU clock that
 * Node does not expose (process.threadCpuUsage() is getrusage(RUSAGE_THREAD), which only
 * advances at scheduler ticks). A Node-API module; the few Node-API declarations it needs are
 * written out here so it builds with plain gcc and no Node headers.
 */
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);

extern napi_status napi_create_double(napi_env env, double value, napi_value *result);
extern napi_status napi_create_function(napi_env env, const char *name, size_t length,
					napi_callback cb, void *data, napi_value *result);
extern napi_status napi_set_named_property(napi_env env, napi_value object, const char *name,
					   napi_value value);

static napi_value thread_cpu_ns(napi_env env, napi_callback_info info)
{
	(void)info;
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	napi_value v;
	napi_create_double(env, (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec, &v);
	return v;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports)
{
	napi_value fn;
	napi_create_function(env, "threadCpuNs", SIZE_MAX, thread_cpu_ns, NULL, &fn);
	napi_set_named_property(env, exports, "threadCpuNs", fn);
	return exports;
}
