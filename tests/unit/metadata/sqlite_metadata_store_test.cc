#include "metadata/sqlite_metadata_store.h"

#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace mcos::metadata {
namespace {

mcos::v1::MetadataRow Row(const std::string& key, const std::string& value, uint64_t hlc,
                          const std::string& cluster = "c1", bool tombstone = false) {
  mcos::v1::MetadataRow r;
  r.set_table("t");
  r.set_key(key);
  r.set_value(value);
  r.mutable_version()->set_hlc(hlc);
  r.mutable_version()->set_cluster(cluster);
  r.set_tombstone(tombstone);
  return r;
}

TEST(SqliteMetadataStoreTest, LastWriterWinsInAnyOrder) {
  auto store = SqliteMetadataStore::Open(":memory:");
  MCOS_ASSERT_OK(store);
  EXPECT_TRUE(*(*store)->MergeRow(Row("k", "v2", 20)));
  EXPECT_FALSE(*(*store)->MergeRow(Row("k", "v1", 10)));        // older: ignored
  EXPECT_FALSE(*(*store)->MergeRow(Row("k", "same", 20)));      // equal: ignored
  EXPECT_TRUE(*(*store)->MergeRow(Row("k", "tie", 20, "c2")));  // tie broken by cluster id
  auto row = (*store)->GetRow("t", "k");
  MCOS_ASSERT_OK(row);
  ASSERT_TRUE(row->has_value());
  EXPECT_EQ((*row)->value(), "tie");
  EXPECT_TRUE(*(*store)->MergeRow(Row("k", "", 30, "c1", true)));
  EXPECT_TRUE((*(*store)->GetRow("t", "k"))->tombstone());
  EXPECT_FALSE((*(*store)->GetRow("t", "nope")).has_value());
}

TEST(SqliteMetadataStoreTest, ListsByPrefixAfterKeyAndRevisions) {
  auto store = SqliteMetadataStore::Open(":memory:");
  MCOS_ASSERT_OK(store);
  for (const char* k : {"alice/a", "alice/b", "alice/c", "alicex/z", "bob/a"}) {
    MCOS_ASSERT_OK((*store)->MergeRow(Row(k, k, 1)));
  }
  MCOS_ASSERT_OK((*store)->MergeRow(Row("alice/b", "", 2, "c1", true)));
  auto live = (*store)->ListRows("t", "alice/", "", 100, false);
  MCOS_ASSERT_OK(live);
  ASSERT_EQ(live->size(), 2u);
  EXPECT_EQ((*live)[0].key(), "alice/a");
  EXPECT_EQ((*live)[1].key(), "alice/c");
  auto after = (*store)->ListRows("t", "alice/", "alice/a", 1, true);
  MCOS_ASSERT_OK(after);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].key(), "alice/b");
  EXPECT_EQ((*store)->revision(), 6u);
  auto changes = (*store)->RowsAfter(4, 100);
  MCOS_ASSERT_OK(changes);
  ASSERT_EQ(changes->size(), 2u);
  EXPECT_EQ((*changes)[1].key(), "alice/b");
}

TEST(SqliteMetadataStoreTest, SurvivesReopenAndKeepsSettings) {
  testing::TempDir dir;
  {
    auto store = SqliteMetadataStore::Open(dir.Sub("m.db"));
    MCOS_ASSERT_OK(store);
    MCOS_ASSERT_OK((*store)->MergeRow(Row("k", "v", 5)));
    MCOS_ASSERT_OK((*store)->SetSetting("cluster_id", "c9"));
  }
  auto store = SqliteMetadataStore::Open(dir.Sub("m.db"));
  MCOS_ASSERT_OK(store);
  EXPECT_EQ((*(*store)->GetRow("t", "k"))->value(), "v");
  EXPECT_EQ(**(*store)->GetSetting("cluster_id"), "c9");
  EXPECT_EQ((*store)->revision(), 1u);
}

mcos::v1::ReplicationTask Task(const std::string& object, uint64_t hlc,
                               const std::string& target = "beta") {
  mcos::v1::ReplicationTask t;
  t.mutable_key()->set_user("u");
  t.mutable_key()->set_container("c");
  t.mutable_key()->set_object(object);
  t.mutable_version()->set_hlc(hlc);
  t.mutable_version()->set_cluster("alpha");
  t.set_target(target);
  return t;
}

// The replication queue: one task per (target, object), the newest winning; a claimed task is
// leased (no other claim gets it until the lease ends); a finished one goes, unless a newer one
// replaced it meanwhile; a failed one is due again at its retry time.
TEST(SqliteMetadataStoreTest, ReplicationTasksAreClaimedUnderALeaseAndFinished) {
  auto store = SqliteMetadataStore::Open(":memory:");
  ASSERT_TRUE(store.ok());
  SqliteMetadataStore& q = **store;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  MCOS_ASSERT_OK(q.EnqueueReplication(Task("a", 10), t0));
  MCOS_ASSERT_OK(q.EnqueueReplication(Task("b", 10), t0 + absl::Seconds(1)));
  MCOS_ASSERT_OK(q.EnqueueReplication(Task("c", 10), t0 + absl::Seconds(2)));
  MCOS_ASSERT_OK(q.EnqueueReplication(Task("a", 5), t0));            // older: dropped
  MCOS_ASSERT_OK(q.EnqueueReplication(Task("a", 10, "gamma"), t0));  // another target
  const absl::Time now = t0 + absl::Seconds(10);
  auto first = q.ClaimReplications(now, 3, absl::Seconds(60));
  MCOS_ASSERT_OK(first);
  ASSERT_EQ(first->size(), 3u);
  auto second = q.ClaimReplications(now, 10, absl::Seconds(60));
  MCOS_ASSERT_OK(second);
  ASSERT_EQ(second->size(), 1u);  // the other three are leased
  EXPECT_EQ(q.ClaimReplications(now, 10, absl::Seconds(60))->size(), 0u);

  // "a" for beta done, but a newer "b" was queued meanwhile: "b"'s newer task stays.
  const mcos::v1::ReplicationTask done_a = (*first)[0].task;
  EXPECT_EQ(done_a.key().object(), "a");
  MCOS_ASSERT_OK(q.FinishReplication(done_a, std::nullopt, ""));
  MCOS_ASSERT_OK(q.EnqueueReplication(Task("b", 20), now));
  for (const auto& claimed : *first) {
    if (claimed.task.key().object() == "b") {
      MCOS_ASSERT_OK(q.FinishReplication(claimed.task, std::nullopt, ""));
    }
  }
  auto b = q.ClaimReplications(now, 10, absl::Seconds(60));
  MCOS_ASSERT_OK(b);
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*b)[0].task.version().hlc(), 20u);
  // A failure is due again at its retry time, with its attempt counted.
  MCOS_ASSERT_OK(q.FinishReplication((*b)[0].task, now + absl::Seconds(2), "beta is down"));
  EXPECT_EQ(q.ClaimReplications(now + absl::Seconds(1), 10, absl::Seconds(60))->size(), 0u);
  auto again = q.ClaimReplications(now + absl::Seconds(3), 10, absl::Seconds(60));
  MCOS_ASSERT_OK(again);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].attempts, 1);
  EXPECT_EQ((*again)[0].last_error, "beta is down");
  // Leases end: what was claimed and never finished is due again.
  auto expired = q.ClaimReplications(now + absl::Seconds(61), 10, absl::Seconds(60));
  MCOS_ASSERT_OK(expired);
  EXPECT_EQ(expired->size(), 2u);  // "c" for beta, "a" for gamma
  auto backlog = q.ReplicationBacklogs();
  MCOS_ASSERT_OK(backlog);
  uint64_t tasks = 0;
  for (const auto& bl : *backlog) tasks += bl.tasks;
  EXPECT_EQ(tasks, 3u);
}

}  // namespace
}  // namespace mcos::metadata
