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

}  // namespace
}  // namespace mcos::metadata
