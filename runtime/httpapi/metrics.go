package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mnemo-ai/mnemo/runtime"
)

// metrics are the handler's Prometheus collectors.
type metrics struct {
	requests                  *prometheus.CounterVec
	prompt, cached, generated prometheus.Counter
	ttft                      prometheus.Histogram
	inflight                  prometheus.Gauge
	handler                   http.Handler
}

func newMetrics(reg *prometheus.Registry, rt *runtime.Runtime) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mnemo_http_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		prompt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mnemo_prompt_tokens_total", Help: "Prompt tokens of completed requests, cached ones included.",
		}),
		cached: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mnemo_cached_tokens_total", Help: "Prompt tokens reused from the KV cache instead of computed.",
		}),
		generated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mnemo_generated_tokens_total", Help: "Tokens generated.",
		}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mnemo_time_to_first_token_seconds", Help: "Time from a request's arrival to its first generated token.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mnemo_generations_in_flight", Help: "Generations running now.",
		}),
	}
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mnemo_active_sessions", Help: "Sessions live in the runtime (loaded, holding KV blocks).",
	}, func() float64 { return float64(len(rt.Sessions())) })
	steps := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "mnemo_runtime_steps_total", Help: "Forward steps the runtime ran.",
	}, func() float64 { return float64(rt.Stats().Steps) })
	reg.MustRegister(m.requests, m.prompt, m.cached, m.generated, m.ttft, m.inflight, active, steps)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}
