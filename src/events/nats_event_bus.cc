#include "events/nats_event_bus.h"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace mcos::events {
namespace {

// The one conversion of NATS.c's errors (shared/STYLE.md §4).
absl::Status FromNats(natsStatus s, absl::string_view what) {
  if (s == NATS_OK) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", natsStatus_GetText(s));
  switch (s) {
    case NATS_INVALID_ARG:
    case NATS_ADDRESS_MISSING:
    case NATS_INVALID_SUBJECT:
      return absl::InvalidArgumentError(message);
    case NATS_TIMEOUT:
      return absl::DeadlineExceededError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// What NATS.c may still use after its owner is gone: callbacks run on NATS.c's own threads while a
// connection or subscription closes, after the bus or subscription was destroyed. Kept reachable
// from here for the life of the process (a few bytes per bus and per watch that ended before NATS.c
// said it was done), so that a late callback finds them and the leak checker does not report them.
struct Lingering {
  absl::Mutex mu;
  std::deque<std::string> urls ABSL_GUARDED_BY(mu);  // a deque: references stay valid
  std::deque<std::atomic<uint64_t>> publish_failures ABSL_GUARDED_BY(mu);
  std::set<void*> deliveries ABSL_GUARDED_BY(mu);
};
Lingering& lingering() {
  static auto* l = new Lingering;
  return *l;
}

// The closure of both is the server's URL, kept in lingering(): NATS.c may call them from its own
// threads after the bus is gone (while the connection closes).
void OnDisconnected(natsConnection*, void* closure) {
  common::LogWarning("event bus: lost the NATS server at ",
                     *static_cast<const std::string*>(closure),
                     "; events wait in the outbox until it is back");
}

// Counts the asynchronous publishes JetStream refused or NATS.c gave up on. NATS.c calls it on
// its own threads, possibly while the bus is being destroyed: the counter is kept in lingering().
void OnPublishFailed(jsCtx*, jsPubAckErr* pae, void* closure) {
  static_cast<std::atomic<uint64_t>*>(closure)->fetch_add(1);
  common::LogWarning("event bus: JetStream did not store an event (", natsStatus_GetText(pae->Err),
                     pae->ErrText != nullptr ? absl::StrCat(": ", pae->ErrText) : std::string(),
                     "); the batch is published again");
}

void OnReconnected(natsConnection*, void* closure) {
  common::LogInfo("event bus: connected to the NATS server at ",
                  *static_cast<const std::string*>(closure));
}

// A subscription's callback and whether it may still be called; the NATS.c callback holds `mu`
// while it calls, so that the destructor can wait for a call under way.
struct Delivery {
  absl::Mutex mu;
  bool open ABSL_GUARDED_BY(mu) = true;
  OnEvent on_event;
};

void OnMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* delivery = static_cast<Delivery*>(closure);
  {
    absl::MutexLock lock(&delivery->mu);
    if (delivery->open) {
      delivery->on_event(
          natsMsg_GetSubject(msg),
          std::string(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
    }
  }
  natsMsg_Destroy(msg);
}

// One NATS.c subscription (of a JetStream consumer) and its delivery. The consumer is not deleted
// at the server on the way out (that would be a request to a server that may be away): the server
// drops a consumer nobody listens to by itself.
class NatsSubscription final : public Subscription {
 public:
  NatsSubscription(natsSubscription* sub, std::unique_ptr<Delivery> delivery)
      : sub_(sub), delivery_(std::move(delivery)) {}
  ~NatsSubscription() override {
    {
      absl::MutexLock lock(&delivery_->mu);
      delivery_->open = false;
    }
    // Destroy waits for nothing: calls that begin from here on find `open` false, and the
    // delivery lives until NATS.c is done with the subscription (its completion callback), in
    // lingering() meanwhile (for good if NATS.c closed the subscription already: then it calls
    // nothing more).
    Delivery* released = delivery_.release();
    {
      absl::MutexLock lock(&lingering().mu);
      lingering().deliveries.insert(released);
    }
    natsSubscription_SetOnCompleteCB(
        sub_,
        [](void* closure) {
          {
            absl::MutexLock lock(&lingering().mu);
            lingering().deliveries.erase(closure);
          }
          delete static_cast<Delivery*>(closure);
        },
        released);
    natsSubscription_Destroy(sub_);
  }

 private:
  natsSubscription* sub_;
  std::unique_ptr<Delivery> delivery_;
};

// A subscription to the stream of one domain: an ordered consumer (NATS.c recreates it from the
// sequence after the last one delivered when its heartbeats stop, so it resumes where it stopped
// after any outage), starting at the stream's next sequence when the subscription began, or at
// that time if the domain could not be asked then. If the consumer cannot be made now, a thread
// of the subscription tries again every half second.
class NatsFollow final : public Subscription {
 public:
  NatsFollow(natsConnection* connection, Follow follow, OnEvent on_event)
      : connection_(connection),
        follow_(std::move(follow)),
        on_event_(std::move(on_event)),
        begun_ns_(absl::ToUnixNanos(absl::Now())) {}

  ~NatsFollow() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (retry_.joinable()) retry_.join();
    subscription_.reset();
    if (js_ != nullptr) jsCtx_Destroy(js_);
  }

  absl::Status Begin() {
    jsOptions options;
    jsOptions_Init(&options);
    if (!follow_.domain.empty()) options.Domain = follow_.domain.c_str();
    options.Wait = 1000;
    natsStatus s = natsConnection_JetStream(&js_, connection_, &options);
    if (s != NATS_OK) {
      return FromNats(s, absl::StrCat("JetStream context for domain '", follow_.domain, "'"));
    }
    start_sequence_ = NextSequence();
    if (!TrySubscribe()) retry_ = std::thread([this] { Retry(); });
    return absl::OkStatus();
  }

 private:
  // The sequence the stream gives its next event (1 while it has none: it is made at the first
  // publish); 0 if the domain did not answer.
  uint64_t NextSequence() const {
    jsStreamInfo* info = nullptr;
    auto jerr = static_cast<jsErrCode>(0);
    const natsStatus s = js_GetStreamInfo(&info, js_, follow_.stream.c_str(), nullptr, &jerr);
    if (s != NATS_OK) return jerr == JSStreamNotFoundErr ? 1 : 0;
    const uint64_t next = info->State.LastSeq + 1;
    jsStreamInfo_Destroy(info);
    return next;
  }

  bool TrySubscribe() {
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = follow_.stream.c_str();
    options.Ordered = true;
    // A heartbeat a second (NATS.c's default is 5): a consumer whose heartbeats stop (its server,
    // or the link to it, went away) is made again within about 2 s of its stream being back.
    options.Config.Heartbeat = int64_t{1000000000};
    if (start_sequence_ > 0) {
      options.Config.OptStartSeq = start_sequence_;
    } else {
      options.Config.OptStartTime = begun_ns_;
    }
    auto delivery = std::make_unique<Delivery>();
    delivery->on_event = on_event_;
    natsSubscription* sub = nullptr;
    auto jerr = static_cast<jsErrCode>(0);
    const natsStatus s = js_Subscribe(&sub, js_, follow_.filter.c_str(), OnMessage, delivery.get(),
                                      nullptr, &options, &jerr);
    if (s != NATS_OK) return false;
    subscription_ = std::make_unique<NatsSubscription>(sub, std::move(delivery));
    return true;
  }

  void Retry() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(500));
        if (stopping_) return;
      }
      if (TrySubscribe()) return;
    }
  }

  natsConnection* const connection_;
  const Follow follow_;
  const OnEvent on_event_;
  const int64_t begun_ns_;
  // Set by Begin; then the subscription by Begin or the retry thread only.
  jsCtx* js_ = nullptr;
  uint64_t start_sequence_ = 0;
  std::unique_ptr<NatsSubscription> subscription_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread retry_;
};

}  // namespace

struct NatsEventBus::Handles {
  natsOptions* options = nullptr;
  natsConnection* connection = nullptr;
  jsCtx* js = nullptr;
  // Publishes of this bus that failed after they were sent (OnPublishFailed; in lingering()).
  std::atomic<uint64_t>* publish_failures = nullptr;
};

absl::StatusOr<std::unique_ptr<NatsEventBus>> NatsEventBus::Start(NatsOptions options) {
  if (options.url.empty()) return absl::InvalidArgumentError("no NATS server URL given");
  std::unique_ptr<NatsEventBus> bus(new NatsEventBus(std::move(options)));
  const NatsOptions& o = bus->options_;
  std::string* url = nullptr;  // kept for the process's life (see OnDisconnected)
  {
    absl::MutexLock lock(&lingering().mu);
    url = &lingering().urls.emplace_back(o.url);
    bus->nats_->publish_failures = &lingering().publish_failures.emplace_back(0);
  }
  natsStatus s = natsOptions_Create(&bus->nats_->options);
  if (s == NATS_OK) s = natsOptions_SetURL(bus->nats_->options, o.url.c_str());
  if (s == NATS_OK && !o.user.empty()) {
    s = natsOptions_SetUserInfo(bus->nats_->options, o.user.c_str(), o.password.c_str());
  }
  if (s == NATS_OK && !o.name.empty()) s = natsOptions_SetName(bus->nats_->options, o.name.c_str());
  // Subscriptions share NATS.c's pool of delivery threads (each stays on one of them, in order)
  // instead of a thread each: a watch follows one stream per cluster.
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(bus->nats_->options, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(bus->nats_->options, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(bus->nats_->options, 250);
  if (s == NATS_OK) {
    s = natsOptions_SetRetryOnFailedConnect(bus->nats_->options, true, nullptr, nullptr);
  }
  if (s == NATS_OK) {
    s = natsOptions_SetDisconnectedCB(bus->nats_->options, OnDisconnected, url);
  }
  if (s == NATS_OK) {
    s = natsOptions_SetReconnectedCB(bus->nats_->options, OnReconnected, url);
  }
  if (s != NATS_OK) return FromNats(s, absl::StrCat("NATS options for ", o.url));
  s = natsConnection_Connect(&bus->nats_->connection, bus->nats_->options);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    return FromNats(s, absl::StrCat("connect to the NATS server at ", o.url));
  }
  if (s == NATS_NOT_YET_CONNECTED) {
    common::LogWarning("event bus: the NATS server at ", o.url,
                       " does not answer yet; trying again in the background");
  }
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = 2000;
  js_options.PublishAsync.MaxPending = kPublishBatch;
  js_options.PublishAsync.ErrHandler = OnPublishFailed;
  js_options.PublishAsync.ErrHandlerClosure = bus->nats_->publish_failures;
  s = natsConnection_JetStream(&bus->nats_->js, bus->nats_->connection, &js_options);
  if (s != NATS_OK) return FromNats(s, "JetStream context");
  bus->publisher_ = std::make_unique<common::Daemon>(
      "event publisher", absl::Milliseconds(500),
      [b = bus.get()](common::Pacer& pacer) { return b->PublishPass(pacer); });
  bus->publisher_->Start();
  return bus;
}

NatsEventBus::NatsEventBus(NatsOptions options)
    : options_(std::move(options)), nats_(std::make_unique<Handles>()) {
  static const bool opened = [] {
    return nats_Open(-1) == NATS_OK && nats_SetMessageDeliveryPoolSize(2) == NATS_OK;
  }();
  (void)opened;
}

NatsEventBus::~NatsEventBus() {
  if (publisher_ != nullptr) publisher_->Stop();
  if (nats_->js != nullptr) jsCtx_Destroy(nats_->js);
  if (nats_->connection != nullptr) {
    natsConnection_Close(nats_->connection);
    natsConnection_Destroy(nats_->connection);
  }
  if (nats_->options != nullptr) natsOptions_Destroy(nats_->options);
}

void NatsEventBus::Publish(std::string subject, std::string payload) {
  absl::MutexLock lock(&mu_);
  if (outbox_.size() >= options_.outbox_limit) {
    outbox_.pop_front();
    ++popped_;
    if (dropped_++ % 10000 == 0) {
      common::LogWarning("event bus: the outbox is full (", options_.outbox_limit,
                         " events): dropping the oldest until the NATS server takes them again");
    }
  }
  outbox_.emplace_back(std::move(subject), std::move(payload));
  if (publisher_ != nullptr) publisher_->Wake();
}

absl::StatusOr<std::unique_ptr<Subscription>> NatsEventBus::Subscribe(const Follow& follow,
                                                                      OnEvent on_event) {
  auto subscription = std::make_unique<NatsFollow>(nats_->connection, follow, std::move(on_event));
  MCOS_RETURN_IF_ERROR(subscription->Begin());
  return std::unique_ptr<Subscription>(std::move(subscription));
}

bool NatsEventBus::connected() const {
  return natsConnection_Status(nats_->connection) == NATS_CONN_STATUS_CONNECTED;
}

uint64_t NatsEventBus::published() const {
  absl::MutexLock lock(&mu_);
  return published_;
}

uint64_t NatsEventBus::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

size_t NatsEventBus::waiting() const {
  absl::MutexLock lock(&mu_);
  return outbox_.size();
}

bool NatsEventBus::EnsureStreams() {
  for (const NatsStream& stream : options_.streams) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = stream.name.c_str();
    std::vector<const char*> subjects;
    for (const auto& subject : stream.subjects) subjects.push_back(subject.c_str());
    cfg.Subjects = subjects.data();
    cfg.SubjectsLen = static_cast<int>(subjects.size());
    cfg.Storage = js_FileStorage;
    cfg.MaxAge = stream.max_age_seconds * 1000000000LL;
    cfg.MaxBytes = stream.max_bytes;
    cfg.Discard = js_DiscardOld;
    jsStreamInfo* info = nullptr;
    auto jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_AddStream(&info, nats_->js, &cfg, nullptr, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) {
      s = js_UpdateStream(&info, nats_->js, &cfg, nullptr, &jerr);
    }
    if (info != nullptr) jsStreamInfo_Destroy(info);
    if (s != NATS_OK) return false;
  }
  return true;
}

absl::Status NatsEventBus::PublishPass(common::Pacer& pacer) {
  while (true) {
    // Lets events gather for a bigger batch (one stopping the bus skips the wait: what the
    // outbox holds is still published).
    if (options_.linger > absl::ZeroDuration()) {
      bool full = false;
      {
        absl::MutexLock lock(&mu_);
        full = outbox_.size() >= kPublishBatch;
      }
      if (!full) pacer.Pause(options_.linger);
    }
    // The next events of the outbox, sent together; none leaves the outbox before JetStream
    // acknowledged every one of them.
    std::vector<std::pair<std::string, std::string>> batch;
    uint64_t first = 0;
    {
      absl::MutexLock lock(&mu_);
      if (outbox_.empty()) return absl::OkStatus();
      first = popped_;
      const size_t n = std::min(outbox_.size(), kPublishBatch);
      batch.assign(outbox_.begin(), outbox_.begin() + static_cast<ptrdiff_t>(n));
    }
    if (!connected()) {
      streams_ready_ = false;
      return absl::UnavailableError(absl::StrCat("the NATS server at ", options_.url,
                                                 " cannot be reached: events wait in the outbox"));
    }
    if (!streams_ready_) {
      streams_ready_ = EnsureStreams();
      if (!streams_ready_) {
        return absl::UnavailableError(
            absl::StrCat("JetStream at ", options_.url, " does not answer yet: events wait"));
      }
    }
    // Sent without waiting for each acknowledgement (one round trip and a few thread wake-ups
    // per batch instead of per event), then awaited together. Each carries its content's hash as
    // its message id: a batch published again after a failure is not stored twice by JetStream
    // (within its 2-minute duplicate window).
    const uint64_t failures_before = nats_->publish_failures->load();
    natsStatus s = NATS_OK;
    for (const auto& [subject, payload] : batch) {
      const std::string id = absl::StrCat(
          absl::Hex(common::Hash64(absl::StrCat(subject, absl::string_view("\0", 1), payload)),
                    absl::kZeroPad16));
      jsPubOptions options;
      jsPubOptions_Init(&options);
      options.MsgId = id.c_str();
      s = js_PublishAsync(nats_->js, subject.c_str(), payload.data(),
                          static_cast<int>(payload.size()), &options);
      if (s != NATS_OK) break;
    }
    if (s == NATS_OK) {
      jsPubOptions wait;
      jsPubOptions_Init(&wait);
      wait.MaxWait = 5000;
      s = js_PublishAsyncComplete(nats_->js, &wait);
    }
    if (s == NATS_OK && nats_->publish_failures->load() != failures_before) s = NATS_ERR;
    if (s != NATS_OK) {
      // Not all stored: what is still pending is forgotten (a late acknowledgement changes
      // nothing) and the whole batch goes again next pass (a stream lost meanwhile is made
      // again).
      natsMsgList pending;
      if (js_PublishAsyncGetPendingList(&pending, nats_->js) == NATS_OK) {
        natsMsgList_Destroy(&pending);
      }
      streams_ready_ = false;
      return FromNats(s,
                      "JetStream did not store every event of a batch; they are published again");
    }
    absl::MutexLock lock(&mu_);
    // Those of the batch a full outbox dropped meanwhile are gone already; the rest are in front.
    const uint64_t end = first + batch.size();
    while (popped_ < end && !outbox_.empty()) {
      outbox_.pop_front();
      ++popped_;
      ++published_;
    }
  }
}

}  // namespace mcos::events
