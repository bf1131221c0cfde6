// Command-line flags of the server's limits, shared by mcos-server and mcos-cluster (include only
// from a main.cc: CLI11 is slow to compile).
#pragma once

#include <CLI/CLI.hpp>

#include "server/server_app.h"

namespace mcos::server {

// Add() registers the flags that fill the limits of `options`; Apply() converts them after parsing.
struct ServerFlags {
  int stream_idle_timeout_ms = 60000;
  int upload_settle_ms = 100;
  int replica_timeout_ms = 5000;
  int replication_stream_lifetime_s = 1200;
  int anti_entropy_period_ms = 5000;
  int move_settle_ms = 60000;
  double anti_entropy_mb_per_second = 50;
  int scrub_period_s = 86400;
  int events_max_age_s = 24 * 3600;
  int events_max_mib = 1024;
  double scrub_mb_per_second = 20;
  int tombstone_reap_period_ms = 60000;
  int tombstone_min_age_s = 3600;

  void Add(CLI::App& cli, ServerOptions& options) {
    cli.add_option("--max-uploads", options.max_uploads,
                   "Concurrent uploads this server accepts (0 = no limit); more get "
                   "RESOURCE_EXHAUSTED")
        ->capture_default_str();
    cli.add_option("--max-uploads-per-user", options.max_uploads_per_user,
                   "Concurrent uploads one user may run (0 = no limit)")
        ->capture_default_str();
    cli.add_option("--max-downloads", options.max_downloads,
                   "Concurrent downloads this server serves (0 = no limit)")
        ->capture_default_str();
    cli.add_option("--max-downloads-per-user", options.max_downloads_per_user,
                   "Concurrent downloads one user may run (0 = no limit)")
        ->capture_default_str();
    cli.add_option("--stream-idle-timeout-ms", stream_idle_timeout_ms,
                   "End an upload or download that moves no data for this long (0 = never)")
        ->capture_default_str();
    cli.add_option("--upload-settle-ms", upload_settle_ms,
                   "An upload that declares neither its size nor a finish message commits only "
                   "if no cancel follows its end within this time")
        ->capture_default_str();
    cli.add_option("--replica-timeout-ms", replica_timeout_ms,
                   "A replica cluster that has not taken a write within this (plus its bytes at "
                   "20 MB/s) is left to the replication queue; reads wait this long for a quorum")
        ->capture_default_str()
        ->check(CLI::Range(100, 600000));
    cli.add_option("--replication-stream-lifetime-s", replication_stream_lifetime_s,
                   "Serve a peer's replication stream, whose credential is checked when it opens, "
                   "at most this long; later operations on it are refused undone (peers open a new "
                   "stream every 300 s: keep it above that)")
        ->capture_default_str()
        ->check(CLI::Range(1, 86400));
    cli.add_option("--anti-entropy-period-ms", anti_entropy_period_ms,
                   "Compare this cluster's partitions with the peer clusters' this often and copy "
                   "what they hold newer (0 = never; a federation only)")
        ->capture_default_str()
        ->check(CLI::Range(0, 86400000));
    cli.add_option("--move-settle-ms", move_settle_ms,
                   "After an option's placement changes, how long this server keeps writing to "
                   "the former placement too before it reports that layout settled (writes that "
                   "began under it must have ended by then; docs/placement.md, Moving data)")
        ->capture_default_str()
        ->check(CLI::Range(0, 86400000));
    cli.add_option("--anti-entropy-records-per-second", options.anti_entropy_records_per_second,
                   "Records anti-entropy scans per second, at most (0 = no limit)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cli.add_option("--anti-entropy-parallel-partitions", options.anti_entropy_parallel_partitions,
                   "Partitions that differ from a peer's reconciled at once (their digest and "
                   "scan calls mostly wait on the peer; 1 = one after another)")
        ->capture_default_str()
        ->check(CLI::Range(1, 64));
    cli.add_option("--anti-entropy-mb-per-second", anti_entropy_mb_per_second,
                   "Object data anti-entropy copies per second, in MB, at most (0 = no limit)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cli.add_option("--anti-entropy-foreground-share", options.anti_entropy_foreground_share,
                   "While users' calls arrive, the share of the time anti-entropy copies (moves "
                   "and repairs) may take: they pause between chunks to stay within it, so users "
                   "keep their latency (1 = never give way)")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 1.0));
    cli.add_option("--nats", options.nats_url,
                   "The cluster's nats-server, nats://HOST:PORT: object events are published "
                   "there and WatchObjects reads them (off if empty; the login derives from the "
                   "cluster key, see mcos-cluster --write-nats-config)");
    cli.add_option("--events-max-age-s", events_max_age_s,
                   "Object events older than this leave the MCOS_OBJECTS stream")
        ->capture_default_str()
        ->check(CLI::Range(60, 365 * 86400));
    cli.add_option("--events-max-mib", events_max_mib,
                   "The MCOS_OBJECTS stream keeps at most this many MiB of events (oldest go)")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    cli.add_option("--scrub-period-s", scrub_period_s,
                   "Re-read every object stored here this long after the last sweep ended, and "
                   "replace copies that fail their checksums from a peer (0 = no sweeps; copies "
                   "reads find corrupt are repaired anyway)")
        ->capture_default_str()
        ->check(CLI::Range(0, 100000000));
    cli.add_option("--scrub-mb-per-second", scrub_mb_per_second,
                   "Object data the scrubber reads per second, in MB, at most (0 = no limit)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cli.add_option("--tombstone-reap-period-ms", tombstone_reap_period_ms,
                   "Look for tombstones to forget this often (0 = never): a tombstone goes once "
                   "every cluster of its replica set holds it and no cluster has a write of its "
                   "object queued; a cluster that is down keeps it")
        ->capture_default_str()
        ->check(CLI::Range(0, 86400000));
    cli.add_option("--tombstone-min-age-s", tombstone_min_age_s,
                   "Keep every tombstone at least this long, whatever the clusters confirm (longer "
                   "than any upload runs and than clocks may disagree)")
        ->capture_default_str()
        ->check(CLI::Range(0, 365 * 86400));
  }
  void Apply(ServerOptions& options) const {
    options.stream_idle_timeout = absl::Milliseconds(stream_idle_timeout_ms);
    options.upload_settle = absl::Milliseconds(upload_settle_ms);
    options.replica_timeout = absl::Milliseconds(replica_timeout_ms);
    options.replication_stream_lifetime = absl::Seconds(replication_stream_lifetime_s);
    options.anti_entropy_period = absl::Milliseconds(anti_entropy_period_ms);
    options.move_settle = absl::Milliseconds(move_settle_ms);
    options.anti_entropy_bytes_per_second = anti_entropy_mb_per_second * 1e6;
    options.scrub_period = absl::Seconds(scrub_period_s);
    options.events_max_age_seconds = events_max_age_s;
    options.events_max_bytes = int64_t{events_max_mib} << 20;
    options.scrub_bytes_per_second = scrub_mb_per_second * 1e6;
    options.tombstone_reap_period = absl::Milliseconds(tombstone_reap_period_ms);
    options.tombstone_min_age = absl::Seconds(tombstone_min_age_s);
  }
};

}  // namespace mcos::server
