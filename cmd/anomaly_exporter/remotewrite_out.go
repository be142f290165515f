package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/version"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/remotewrite"
)

// outFlags are the flags of the outgoing side of remote write: where the scores are sent. The
// other --remote-write.* flags bound what the exporter receives.
type outFlags struct {
	urls       []string
	httpConfig string
	opts       remotewrite.SenderOptions
}

func addOutFlags(a *kingpin.Application, f *outFlags) {
	a.Flag("remote-write.url", "Outgoing: remote-write URL to send the output series (anomaly_score, …) to, stamped with the input samples' timestamps (repeatable; each URL gets every sample). Unset: scores are only served on /scores.").
		StringsVar(&f.urls)
	a.Flag("remote-write.http-config.file", "Outgoing: HTTP client configuration file (prometheus/common format: basic_auth, authorization, oauth2, tls_config, proxy_url, …) for every --remote-write.url.").
		Default("").StringVar(&f.httpConfig)
	a.Flag("remote-write.protobuf-message", "Outgoing: protocol of --remote-write.url requests: prometheus.WriteRequest (remote write 1.0) or io.prometheus.write.v2.Request (2.0).").
		Default(remotewrite.MessageV1).EnumVar(&f.opts.ProtobufMessage, remotewrite.MessageV1, remotewrite.MessageV2)
	a.Flag("remote-write.queue-capacity", "Outgoing: output samples queued per --remote-write.url while the receiver is slow or down (about 15 bytes each); when full, the oldest are dropped and counted.").
		Default(fmt.Sprint(remotewrite.DefaultQueueCapacity)).IntVar(&f.opts.QueueCapacity)
	a.Flag("remote-write.max-samples-per-send", "Outgoing: most output samples per request (whole points of six samples).").
		Default(fmt.Sprint(remotewrite.DefaultMaxSamplesPerSend)).IntVar(&f.opts.MaxSamplesPerSend)
	a.Flag("remote-write.batch-send-deadline", "Outgoing: longest a partial batch waits before it is sent.").
		Default(remotewrite.DefaultBatchSendDeadline.String()).DurationVar(&f.opts.BatchSendDeadline)
	a.Flag("remote-write.shards", "Outgoing: concurrent requests per --remote-write.url; series are split among them by hash, so each series' samples stay in order.").
		Default(fmt.Sprint(remotewrite.DefaultSenderShards)).IntVar(&f.opts.Shards)
	a.Flag("remote-write.min-backoff", "Outgoing: first delay before retrying a request that got a 5xx, a 429 or a network error; doubled on every retry.").
		Default(remotewrite.DefaultMinBackoff.String()).DurationVar(&f.opts.MinBackoff)
	a.Flag("remote-write.max-backoff", "Outgoing: longest delay between retries (a receiver's Retry-After may ask for longer, up to 1m).").
		Default(remotewrite.DefaultMaxBackoff.String()).DurationVar(&f.opts.MaxBackoff)
	a.Flag("remote-write.timeout", "Outgoing: timeout of one request to a --remote-write.url.").
		Default(remotewrite.DefaultRemoteTimeout.String()).DurationVar(&f.opts.Timeout)
}

// scoreSenders is the outgoing side, wired to the store; nil-safe, so that serve need not know
// whether it was configured.
type scoreSenders struct {
	s     *remotewrite.Senders
	store *detector.Store
}

func newScoreSenders(f *outFlags, store *detector.Store, reg prometheus.Registerer, logger *slog.Logger) (*scoreSenders, error) {
	if len(f.urls) == 0 {
		return &scoreSenders{}, nil
	}
	opts := f.opts
	opts.URLs = f.urls
	opts.UserAgent = name + "/" + version.Version
	if f.httpConfig != "" {
		cfg, _, err := config.LoadHTTPConfigFile(f.httpConfig)
		if err != nil {
			return nil, fmt.Errorf("--remote-write.http-config.file: %w", err)
		}
		opts.HTTPClientConfig = *cfg
	}
	s, err := remotewrite.NewSenders(opts, reg, logger)
	if err != nil {
		return nil, err
	}
	store.SetOutput(s)
	logger.Info("Remote-writing the output series", "urls", len(f.urls), "protobuf_message", opts.ProtobufMessage)
	return &scoreSenders{s: s, store: store}, nil
}

// close detaches the senders from the store and flushes what they hold, for at most timeout.
func (o *scoreSenders) close(timeout time.Duration, logger *slog.Logger) {
	if o.s == nil {
		return
	}
	o.store.SetOutput(nil)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := o.s.Close(ctx); err != nil {
		logger.Warn("Remote write: flush of the queued output samples did not finish", "err", err)
	}
}
