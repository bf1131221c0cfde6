// mcos admin user|cluster|repair|rebalance|ring|option ...
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli/cli_context.h"

namespace mcos::cli {
namespace {

class AdminCommands final : public Commands {
 public:
  explicit AdminCommands(CLI::App& cli) {
    admin_ = cli.add_subcommand("admin", "Administer the cluster (admin role)");
    admin_->require_subcommand(1);
    admin_user_ = admin_->add_subcommand("user", "Manage users");
    admin_user_->require_subcommand(1);
    u_add_ = admin_user_->add_subcommand("add", "Add a user");
    u_add_->add_option("name", name_, "User name")->required();
    u_add_->add_flag("--admin", admin_role_, "Give the admin role");
    u_add_->add_flag("--password-stdin", password_stdin_, "Read the password from stdin");
    u_add_->add_option(
        "--identity", identity_,
        "Give the new user the data of a removed user's identity (see list --removed)");
    u_remove_ = admin_user_->add_subcommand("remove", "Remove a user");
    u_remove_->add_option("name", name_, "User name")->required();
    u_passwd_ = admin_user_->add_subcommand("passwd", "Set a user's password");
    u_passwd_->add_option("name", name_, "User name")->required();
    u_passwd_->add_flag("--password-stdin", password_stdin_, "Read the password from stdin");
    u_list_ = admin_user_->add_subcommand("list", "List users");
    u_list_->add_flag(
        "--removed", list_removed_,
        "List removed users whose data is kept: identity, former name, role, removed at");
    admin_cluster_ = admin_->add_subcommand("cluster", "Clusters and their services");
    admin_cluster_->require_subcommand(1);
    cl_status_ = admin_cluster_->add_subcommand(
        "status", "A cluster's services and health (default: the one answering)");
    cl_status_->add_option("name", cluster_name_, "Cluster name (see admin cluster list)");
    cl_list_ = admin_cluster_->add_subcommand(
        "list", "The federation's clusters: name, region, endpoint, state, last contact");
    cl_add_ = admin_cluster_->add_subcommand(
        "add",
        "Peer this cluster with another (both need the same --federation-secret-file); one that "
        "holds users, containers and objects joins with them (its data then moves under this "
        "federation's rings; a join that cannot merge is refused, listing why, and changes "
        "nothing)");
    cl_add_->add_option("--endpoint", cluster_endpoint_, "The other cluster's controller HOST:PORT")
        ->required();
    cl_remove_ = admin_cluster_->add_subcommand(
        "remove",
        "Remove a cluster from the federation (refused while it holds data: use --drain)");
    cl_remove_->add_option("name", cluster_name_, "Cluster name")->required();
    auto* drain = cl_remove_->add_flag(
        "--drain", drain_,
        "Move its data off first: set its weight to 0 in every ring, wait until "
        "nothing moves (progress on a terminal), then remove it");
    cl_remove_
        ->add_flag("--force", force_,
                   "The cluster is gone for good: drop it from every ring now; what it held is "
                   "copied again from the surviving replicas (asks first on a terminal)")
        ->excludes(drain);
    cl_remove_->add_flag("--yes", yes_, "Do not ask before --force");

    admin_repair_ = admin_->add_subcommand("repair", "Replication and repair");
    admin_repair_->require_subcommand(1);
    rp_status_ = admin_repair_->add_subcommand(
        "status",
        "Replication state: writes this cluster still has to send to other clusters (backlog, "
        "oldest, lag), anti-entropy with each peer (partitions that differ, last full pass, "
        "records copied) and the scrubber (objects checked, corrupt copies found and repaired)");

    admin_rebalance_ = admin_->add_subcommand(
        "rebalance", "Data moving after a ring or option change (docs/placement.md, Moving data)");
    admin_rebalance_->require_subcommand(1);
    rb_status_ = admin_rebalance_->add_subcommand(
        "status",
        "Per option whose data moves: from and to ring versions, partitions done and left, bytes "
        "copied and left, rate and ETA, and per cluster whether it settled and copied everything "
        "(nothing listed: nothing moves)");
    rb_status_->add_flag("--watch", watch_,
                         "Until nothing moves: one progress bar line redrawn every second on a "
                         "terminal, else the status printed again every second");
    rb_pause_ = admin_rebalance_->add_subcommand(
        "pause",
        "Stop moving data, federation-wide (writes still go to the former holders too; reads and "
        "repair go on) until `resume`");
    rb_resume_ = admin_rebalance_->add_subcommand("resume", "Move data again after `pause`");
    rb_rate_ = admin_rebalance_->add_subcommand(
        "rate",
        "Set the MB/s each server copies moving data at, federation-wide and at once (0: each "
        "server's own --anti-entropy-mb-per-second)");
    rb_rate_->add_option("mb_per_second", rate_, "MB per second per server")
        ->required()
        ->check(CLI::Range(0.0, 100000.0));

    admin_ring_ = admin_->add_subcommand("ring", "Placement rings");
    admin_ring_->require_subcommand(1);
    r_list_ = admin_ring_->add_subcommand("list", "List rings");
    r_create_ = admin_ring_->add_subcommand("create", "Create a ring");
    r_update_ = admin_ring_->add_subcommand(
        "update", "Change a ring's members and weights, replicas or partition power");
    for (auto* c : {r_create_, r_update_}) c->add_option("id", ring_id_, "Ring id")->required();
    r_create_
        ->add_option("--member", members_, "CLUSTER[:WEIGHT[:REGION]] (repeat for each member)")
        ->required();
    r_update_->add_option("--member", members_,
                          "CLUSTER[:WEIGHT[:REGION]] (repeat for each member; the whole new list; "
                          "none = keep the members)");
    r_create_->add_option("--replicas", replicas_, "Replicas per object")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    r_create_->add_option("--partition-power", partition_power_, "Partitions = 2^power (1..18)")
        ->capture_default_str();
    r_update_->add_option("--replicas", update_replicas_, "New replica count (0 = keep)")
        ->check(CLI::NonNegativeNumber);
    r_update_->add_option("--partition-power", update_power_,
                          "New partition power (0 = keep; raising it moves nothing)");
    r_update_->add_flag("--dry-run", dry_run_, "Only print what would move");
    admin_option_ = admin_->add_subcommand("option", "Storage options (policies)");
    admin_option_->require_subcommand(1);
    op_list_ = admin_option_->add_subcommand("list", "List options");
    op_add_ = admin_option_->add_subcommand("add", "Add an option");
    op_add_->add_option("name", name_, "Option name")->required();
    op_add_->add_option("--ring", ring_name_, "Ring the option places data with")->required();
    op_add_
        ->add_option("--write-concern", write_concern_,
                     "Clusters that must hold a write (0 = a majority of the replicas)")
        ->check(CLI::NonNegativeNumber);
    op_add_->add_option("--mode", mode_, "consistent or degraded")
        ->capture_default_str()
        ->check(CLI::IsMember({"consistent", "degraded"}));
    op_add_->add_flag("--default", make_default_, "Make it the default option");
    op_set_ring_ = admin_option_->add_subcommand("set-ring", "Point an option at another ring");
    op_set_ring_->add_option("name", name_, "Option name")->required();
    op_set_ring_->add_option("ring", ring_name_, "Ring id")->required();
    op_set_ring_->add_flag("--dry-run", dry_run_, "Only print what would move");
    op_remove_ = admin_option_->add_subcommand("remove", "Remove an unused option");
    op_remove_->add_option("name", name_, "Option name")->required();
  }

  std::optional<int> Run(const Globals& g, client::Client& client) override {
    if (u_add_->parsed() || u_passwd_->parsed()) {
      auto pw = ReadPassword(password_stdin_, "password for " + name_ + ": ");
      if (!pw.ok()) return Fail(pw.status());
      if (u_add_->parsed()) {
        auto r = client.AddUser(name_, *pw, admin_role_, identity_);
        if (!r.ok()) return Fail(r.status());
        if (g.json)
          std::cout << ToJson(*r) << "\n";
        else
          std::cout << "added user " << r->name() << " (" << r->role() << ")\n";
      } else {
        if (auto s = client.SetPassword(name_, *pw); !s.ok()) return Fail(s);
        if (!g.json) std::cout << "password of " << name_ << " changed\n";
      }
      return 0;
    }
    if (u_remove_->parsed()) {
      if (auto s = client.RemoveUser(name_); !s.ok()) return Fail(s);
      if (!g.json) std::cout << "removed user " << name_ << "\n";
      return 0;
    }
    if (u_list_->parsed()) {
      auto r = client.ListUsers();
      if (!r.ok()) return Fail(r.status());
      if (g.json)
        std::cout << ToJson(*r) << "\n";
      else if (list_removed_) {
        for (const auto& u : r->removed()) {
          std::cout << u.identity() << "\t" << u.name() << "\t" << u.role() << "\t"
                    << absl::FormatTime(absl::FromUnixSeconds(u.removed().seconds())) << "\n";
        }
      } else {
        for (const auto& u : r->users()) std::cout << u.name() << "\t" << u.role() << "\n";
      }
      return 0;
    }
    auto state_name = [](mcos::v1::ServiceState state) -> std::string {
      switch (state) {
        case mcos::v1::SERVICE_STATE_UP:
          return "up";
        case mcos::v1::SERVICE_STATE_DOWN:
          return "down";
        default:
          return "unknown";
      }
    };
    auto last_contact = [](const mcos::v1::ClusterInfo& c) -> std::string {
      if (!c.has_last_seen()) return "never";
      return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(c.last_seen().seconds()),
                              absl::UTCTimeZone());
    };
    if (cl_status_->parsed()) {
      auto r = client.GetCluster(cluster_name_);
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
      } else {
        const auto& c = r->cluster();
        std::cout << "cluster " << c.id();
        if (!c.controller_endpoint().empty()) {
          std::cout << "\t" << (c.region().empty() ? "-" : c.region()) << "\t"
                    << c.controller_endpoint() << "\t" << state_name(c.state()) << "\t"
                    << "last contact " << last_contact(c) << "\tmetadata lag " << c.metadata_lag();
        }
        std::cout << "\n";
        if (!c.last_error().empty()) std::cout << "  last error: " << c.last_error() << "\n";
        for (const auto& s : r->services()) {
          std::cout << "  " << mcos::v1::ServiceKind_Name(s.kind()).substr(13) << "\t" << s.id()
                    << "\t" << s.endpoint() << "\t"
                    << (s.state() == mcos::v1::SERVICE_STATE_UP ? "UP" : "DOWN")
                    << (s.condition().empty() ? "" : "\t") << s.condition()
                    << (s.detail().empty() ? "" : "\t") << s.detail() << "\n";
        }
      }
      return 0;
    }
    if (rp_status_->parsed()) {
      auto r = client.GetRepairStatus();
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
        return 0;
      }
      auto when = [](const google::protobuf::Timestamp& t) {
        if (t.seconds() == 0) return std::string("never");
        return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                                absl::UTCTimeZone());
      };
      std::cout << r->queued_tasks() << " queued write(s)\n";
      for (const auto& l : r->links()) {
        std::cout << l.from_cluster() << " -> " << l.to_cluster();
        if (l.backlog() > 0) {
          std::cout << "\tbacklog " << l.backlog() << "\toldest " << when(l.oldest_unreplicated())
                    << "\tlag " << absl::StrFormat("%.1f", l.lag_seconds()) << " s";
        }
        if (l.partitions_compared() > 0 || !l.last_error().empty()) {
          std::cout << "\tanti-entropy: " << l.partitions_out_of_sync() << " of "
                    << l.partitions_compared() << " partitions differ, last full pass "
                    << when(l.last_full_pass()) << ", " << l.records_repaired() << " record(s) ("
                    << l.bytes_repaired() << " bytes) copied, " << l.anti_entropy_bytes_exchanged()
                    << " bytes of digests and scans";
          if (!l.last_error().empty()) std::cout << ", error: " << l.last_error();
        }
        std::cout << "\n";
      }
      std::cout << "scrubber: " << r->objects_audited() << " object(s) (" << r->bytes_audited()
                << " bytes) checked, " << r->corrupt_copies_found() << " corrupt, "
                << r->corrupt_copies_repaired() << " repaired, " << r->corrupt_copies_unrepaired()
                << " not repaired yet; last sweep " << when(r->last_scrub()) << "\n";
      std::cout << "tombstones: " << r->tombstones_reaped() << " reaped, "
                << r->tombstones_waiting() << " old enough but kept";
      if (r->tombstones_waiting_on_size() > 0) {
        std::cout << " (not confirmed by: " << absl::StrJoin(r->tombstones_waiting_on(), ", ")
                  << ")";
      }
      std::cout << "\n";
      return 0;
    }
    if (rb_rate_->parsed()) {
      auto r = client.SetRebalanceRate(rate_);
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
      } else if (r->max_mb_per_second() > 0) {
        std::cout << "data moves at up to " << r->max_mb_per_second() << " MB/s per server\n";
      } else {
        std::cout << "data moves at each server's --anti-entropy-mb-per-second\n";
      }
      return 0;
    }
    if (rb_pause_->parsed() || rb_resume_->parsed()) {
      auto r = client.PauseRebalance(rb_pause_->parsed());
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
      } else {
        std::cout << "moving data is " << (r->paused() ? "paused" : "resumed") << " ("
                  << r->tasks_size() << " former layout(s) live)\n";
      }
      return 0;
    }
    if (rb_status_->parsed()) {
      const bool bar = watch_ && !g.json && isatty(STDOUT_FILENO);
      while (true) {
        auto r = client.GetRebalanceStatus();
        if (!r.ok()) return Fail(r.status());
        if (bar) {
          // One line, redrawn, on a terminal.
          if (r->tasks().empty()) {
            std::cout << "\r\033[Knothing moves\n";
            return 0;
          }
          std::cout << "\r\033[K" << ProgressLine(*r) << std::flush;
          absl::SleepFor(absl::Seconds(1));
          continue;
        }
        if (g.json) {
          std::cout << ToJson(*r) << "\n";
        } else if (r->tasks().empty()) {
          std::cout << "nothing moves" << (r->paused() ? " (moving data is paused)" : "") << "\n";
        } else if (r->paused()) {
          std::cout << "moving data is paused (mcos admin rebalance resume)\n";
        }
        if (!g.json && r->max_mb_per_second() > 0 && !r->tasks().empty()) {
          std::cout << "copies go at up to " << r->max_mb_per_second()
                    << " MB/s per server (mcos admin rebalance rate)\n";
        }
        for (const auto& t : r->tasks()) {
          if (g.json) break;
          const uint64_t all = t.partitions_done() + t.partitions_left();
          std::cout << "option " << t.option() << ": ring " << t.from_ring() << " v"
                    << t.from_ring_version() << " -> " << t.to_ring() << " v" << t.to_ring_version()
                    << ", " << t.partitions_done() << " of " << all << " partitions done ("
                    << (all == 0 ? 100 : 100 * t.partitions_done() / all) << "%), "
                    << t.bytes_moved() << " bytes copied";
          if (t.bytes_left() > 0) std::cout << ", about " << t.bytes_left() << " left";
          if (t.bytes_per_second() > 0) {
            std::cout << ", " << HumanBytes(static_cast<uint64_t>(t.bytes_per_second())) << "/s";
          }
          if (t.eta_seconds() >= 0) std::cout << ", ETA " << t.eta_seconds() << " s";
          std::cout << ", since "
                    << absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                        absl::FromUnixSeconds(t.started().seconds()),
                                        absl::UTCTimeZone())
                    << "\n";
          for (const auto& c : t.clusters()) {
            std::cout << "  " << c.cluster() << "\t" << c.partitions() << " partition(s)\t"
                      << (c.synced()    ? "synced"
                          : c.settled() ? "copying"
                                        : "settling")
                      << "\t" << c.records_copied() << " record(s), " << c.bytes_copied()
                      << " bytes copied\n";
          }
        }
        if (!watch_ || r->tasks().empty()) return 0;
        std::cout.flush();
        absl::SleepFor(absl::Seconds(1));
      }
    }
    if (cl_list_->parsed()) {
      auto r = client.ListClusters();
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
        return 0;
      }
      for (const auto& c : r->clusters()) {
        std::cout << c.id() << "\t" << (c.region().empty() ? "-" : c.region()) << "\t"
                  << (c.controller_endpoint().empty() ? "-" : c.controller_endpoint()) << "\t"
                  << state_name(c.state()) << "\t" << last_contact(c) << "\n";
      }
      return 0;
    }
    if (cl_add_->parsed()) {
      auto r = client.AddCluster(cluster_endpoint_);
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
        return 0;
      }
      std::cout << r->id() << "\n";
      // A cluster that joined with data: its data moves under the federation's placement.
      if (auto moving = client.GetRebalanceStatus(); moving.ok()) {
        for (const auto& t : moving->tasks()) {
          std::cout << "option " << t.option() << " moves data from ring " << t.from_ring() << " v"
                    << t.from_ring_version() << " to " << t.to_ring() << " v" << t.to_ring_version()
                    << " (mcos admin rebalance status --watch)\n";
        }
      }
      return 0;
    }
    if (cl_remove_->parsed() && force_) {
      if (!yes_ && isatty(STDIN_FILENO)) {
        std::cerr << "Drop cluster " << cluster_name_
                  << " for good? Every ring leaves it at once and what it held is copied again "
                     "from the surviving replicas (partitions whose only replica it held are "
                     "lost). Type its name to confirm: "
                  << std::flush;
        std::string typed;
        std::getline(std::cin, typed);
        if (typed != cluster_name_) {
          std::cerr << "not confirmed; nothing was changed\n";
          return 1;
        }
      }
      mcos::v1::RemoveClusterRequest req;
      req.set_id(cluster_name_);
      req.set_force(true);
      auto r = client.RemoveCluster(req);
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
        return 0;
      }
      for (const auto& line : r->changes()) std::cout << line << "\n";
      std::cout << "dropped cluster " << cluster_name_ << "\n";
      return 0;
    }
    if (cl_remove_->parsed()) {
      if (drain_) {
        if (auto s = Drain(client, g.json); !s.ok()) return Fail(s);
      }
      if (auto s = client.RemoveCluster(cluster_name_); !s.ok()) return Fail(s);
      if (!g.json) std::cout << "removed cluster " << cluster_name_ << "\n";
      return 0;
    }
    auto print_plan = [&](const mcos::v1::MovementPlan& plan) {
      std::cout << plan.partitions_moved() << " of " << plan.partitions_total()
                << " partitions change placement, holding "
                << (plan.bytes_unknown() ? std::string("an unknown number of bytes (the storage "
                                                       "service did not answer)")
                                         : absl::StrCat(plan.bytes_moved(), " bytes"))
                << "\n";
      for (const auto& c : plan.clusters()) {
        std::cout << "  " << c.cluster() << "\tin " << c.partitions_in() << " partitions ("
                  << c.bytes_in() << " bytes)\tout " << c.partitions_out() << " partitions ("
                  << c.bytes_out() << " bytes)\n";
      }
    };
    auto parse_members =
        [&](google::protobuf::RepeatedPtrField<mcos::v1::RingMember>* out) -> absl::Status {
      for (const auto& m : members_) {
        std::vector<std::string> parts = absl::StrSplit(m, ':');
        auto* member = out->Add();
        member->set_cluster(parts[0]);
        member->set_weight(1.0);
        double weight = 1.0;
        if (parts.size() > 1 && !absl::SimpleAtod(parts[1], &weight)) {
          return absl::InvalidArgumentError(absl::StrCat("--member '", m, "': bad weight"));
        }
        member->set_weight(weight);
        if (parts.size() > 2) member->set_region(parts[2]);
        if (parts.size() > 3) {
          return absl::InvalidArgumentError(
              absl::StrCat("--member '", m, "' is not CLUSTER[:WEIGHT[:REGION]]"));
        }
      }
      return absl::OkStatus();
    };
    if (r_list_->parsed()) {
      auto r = client.ListRings();
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
        return 0;
      }
      // One line per ring, then one per member: its replica count in the layout against the
      // ideal (docs/placement.md).
      for (const auto& ring : r->rings()) {
        std::cout << ring.id() << "\tv" << ring.version() << "\treplicas " << ring.replicas()
                  << "\tpower " << ring.partition_power() << "\n";
        for (const auto& m : ring.members()) {
          std::cout << absl::StrFormat(
              "  %-24s region %-12s weight %-8g replicas %8u (ideal %.1f)\n", m.cluster(),
              m.region().empty() ? "-" : m.region(), m.weight(), m.assigned_replicas(),
              m.ideal_replicas());
        }
      }
      return 0;
    }
    if (r_create_->parsed()) {
      mcos::v1::Ring ring;
      ring.set_id(ring_id_);
      ring.set_replicas(replicas_);
      ring.set_partition_power(partition_power_);
      if (auto s = parse_members(ring.mutable_members()); !s.ok()) return Fail(s);
      auto r = client.CreateRing(ring);
      if (!r.ok()) return Fail(r.status());
      if (g.json)
        std::cout << ToJson(*r) << "\n";
      else
        std::cout << "created ring " << r->id() << "\n";
      return 0;
    }
    if (r_update_->parsed()) {
      mcos::v1::UpdateRingRequest req;
      req.set_id(ring_id_);
      req.set_dry_run(dry_run_);
      req.set_replicas(update_replicas_);
      req.set_partition_power(update_power_);
      if (auto s = parse_members(req.mutable_members()); !s.ok()) return Fail(s);
      auto r = client.UpdateRing(req);
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
        return 0;
      }
      std::cout << (dry_run_ ? "dry run: " : "updated ring ") << r->ring().id() << " (version "
                << r->ring().version() << ")\n";
      print_plan(r->plan());
      return 0;
    }
    if (op_list_->parsed()) {
      auto r = client.ListOptions();
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
        return 0;
      }
      for (const auto& o : r->options()) {
        std::cout << o.name() << "\tring " << o.ring() << "\twrite concern "
                  << (o.write_concern() == 0 ? std::string("majority")
                                             : std::to_string(o.write_concern()))
                  << "\t"
                  << (o.mode() == mcos::v1::OPTION_MODE_DEGRADED ? "degraded" : "consistent")
                  << (o.is_default() ? "\tdefault" : "") << "\n";
      }
      return 0;
    }
    if (op_add_->parsed()) {
      mcos::v1::Option o;
      o.set_name(name_);
      o.set_ring(ring_name_);
      o.set_write_concern(write_concern_);
      o.set_is_default(make_default_);
      if (mode_ == "consistent") {
        o.set_mode(mcos::v1::OPTION_MODE_CONSISTENT);
      } else if (mode_ == "degraded") {
        o.set_mode(mcos::v1::OPTION_MODE_DEGRADED);
      } else {
        return Fail(absl::InvalidArgumentError("--mode must be consistent or degraded"));
      }
      auto r = client.AddOption(o);
      if (!r.ok()) return Fail(r.status());
      if (g.json)
        std::cout << ToJson(*r) << "\n";
      else
        std::cout << "added option " << r->name() << "\n";
      return 0;
    }
    if (op_set_ring_->parsed()) {
      mcos::v1::SetOptionRingRequest req;
      req.set_option(name_);
      req.set_ring(ring_name_);
      req.set_dry_run(dry_run_);
      auto r = client.SetOptionRing(req);
      if (!r.ok()) return Fail(r.status());
      if (g.json) {
        std::cout << ToJson(*r) << "\n";
        return 0;
      }
      std::cout << (dry_run_ ? "dry run: option " : "option ") << name_ << " -> ring " << ring_name_
                << "\n";
      print_plan(r->plan());
      return 0;
    }
    if (op_remove_->parsed()) {
      if (auto s = client.RemoveOption(name_); !s.ok()) return Fail(s);
      if (!g.json) std::cout << "removed option " << name_ << "\n";
      return 0;
    }
    return std::nullopt;
  }

 private:
  // The moves of `status` in one line: a bar of partitions done, bytes copied (and left, when
  // known), rate and ETA.
  static std::string ProgressLine(const mcos::v1::RebalanceStatus& status) {
    uint64_t done = 0, all = 0, bytes = 0, left = 0;
    double rate = 0;
    int64_t eta = -1;
    for (const auto& t : status.tasks()) {
      done += t.partitions_done();
      all += t.partitions_done() + t.partitions_left();
      bytes += t.bytes_moved();
      left += t.bytes_left();
      rate += t.bytes_per_second();
      eta = std::max(eta, t.eta_seconds());
    }
    constexpr int kWidth = 24;
    const int filled = all == 0 ? 0 : static_cast<int>(kWidth * done / all);
    std::string line =
        absl::StrCat("[", std::string(filled, '#'), std::string(kWidth - filled, '.'), "] ", done,
                     "/", all, " partitions, ", HumanBytes(bytes), " copied");
    if (left > 0) absl::StrAppend(&line, ", ~", HumanBytes(left), " left");
    if (rate > 0) absl::StrAppend(&line, ", ", HumanBytes(static_cast<uint64_t>(rate)), "/s");
    if (eta >= 0) absl::StrAppend(&line, ", ETA ", eta, " s");
    if (status.paused()) absl::StrAppend(&line, " (paused: mcos admin rebalance resume)");
    return line;
  }

  // Sets cluster_name_'s weight to 0 in every ring that gives it some, then waits until no data
  // moves (one progress line on a terminal).
  absl::Status Drain(client::Client& client, bool json) {
    auto rings = client.ListRings();
    if (!rings.ok()) return rings.status();
    for (const auto& ring : rings->rings()) {
      mcos::v1::UpdateRingRequest update;
      update.set_id(ring.id());
      bool member = false;
      for (const auto& m : ring.members()) {
        auto* copy = update.add_members();
        *copy = m;
        copy->clear_assigned_replicas();
        copy->clear_ideal_replicas();
        if (m.cluster() == cluster_name_ && m.weight() > 0) {
          copy->set_weight(0);
          member = true;
        }
      }
      if (!member) continue;
      auto updated = client.UpdateRing(update);
      if (!updated.ok()) return updated.status();
      if (!json) {
        std::cout << "ring " << ring.id() << ": weight of " << cluster_name_ << " set to 0; "
                  << updated->plan().partitions_moved() << " of "
                  << updated->plan().partitions_total() << " partitions change placement\n";
      }
    }
    const bool tty = !json && isatty(STDOUT_FILENO);
    const absl::Time start = absl::Now();
    while (true) {
      auto status = client.GetRebalanceStatus();
      if (!status.ok()) return status.status();
      if (status->tasks().empty()) break;
      if (tty) {
        std::cout << "\r\033[Kdraining " << cluster_name_ << " " << ProgressLine(*status) << ", "
                  << absl::ToInt64Seconds(absl::Now() - start) << " s" << std::flush;
      }
      absl::SleepFor(absl::Seconds(1));
    }
    if (!json) {
      std::cout << (tty ? "\n" : "") << "drained " << cluster_name_ << " in "
                << absl::ToInt64Seconds(absl::Now() - start) << " s\n";
    }
    return absl::OkStatus();
  }

  CLI::App* admin_ = nullptr;
  CLI::App* admin_user_ = nullptr;
  CLI::App* u_add_ = nullptr;
  CLI::App* u_remove_ = nullptr;
  CLI::App* u_passwd_ = nullptr;
  CLI::App* u_list_ = nullptr;
  CLI::App* admin_cluster_ = nullptr;
  CLI::App* cl_status_ = nullptr;
  CLI::App* cl_list_ = nullptr;
  CLI::App* cl_add_ = nullptr;
  CLI::App* cl_remove_ = nullptr;
  CLI::App* admin_repair_ = nullptr;
  CLI::App* rp_status_ = nullptr;
  CLI::App* admin_rebalance_ = nullptr;
  CLI::App* rb_status_ = nullptr;
  CLI::App* rb_pause_ = nullptr;
  CLI::App* rb_resume_ = nullptr;
  CLI::App* rb_rate_ = nullptr;
  CLI::App* admin_ring_ = nullptr;
  CLI::App* r_list_ = nullptr;
  CLI::App* r_create_ = nullptr;
  CLI::App* r_update_ = nullptr;
  CLI::App* admin_option_ = nullptr;
  CLI::App* op_list_ = nullptr;
  CLI::App* op_add_ = nullptr;
  CLI::App* op_set_ring_ = nullptr;
  CLI::App* op_remove_ = nullptr;
  std::string name_, identity_, cluster_name_, cluster_endpoint_, ring_id_, ring_name_;
  std::string mode_ = "consistent";
  bool password_stdin_ = false, admin_role_ = false, list_removed_ = false;
  bool dry_run_ = false, make_default_ = false, watch_ = false, drain_ = false;
  bool force_ = false, yes_ = false;
  double rate_ = 0;
  uint32_t replicas_ = 1, partition_power_ = 16, write_concern_ = 0;
  uint32_t update_replicas_ = 0, update_power_ = 0;
  std::vector<std::string> members_;
};

}  // namespace

std::unique_ptr<Commands> AddAdminCommands(CLI::App& cli) {
  return std::make_unique<AdminCommands>(cli);
}

}  // namespace mcos::cli
