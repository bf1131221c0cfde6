// The federation metadata's row table over a real SQLite database: last writer wins between
// this cluster's changes and peers' rows, a bad batch from a peer changes nothing, and the
// observer hears of every row that won.
#include "controller/metadata_table.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "mcos/v1/controller.pb.h"
#include "tests/support/fake_clock.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace mcos::controller {
namespace {

mcos::v1::MetadataRow PeerRow(const std::string& table, const std::string& key,
                              const google::protobuf::Message* value, uint64_t hlc,
                              const std::string& cluster = "beta") {
  mcos::v1::MetadataRow row;
  row.set_table(table);
  row.set_key(key);
  if (value != nullptr) {
    row.set_value(value->SerializeAsString());
  } else {
    row.set_tombstone(true);
  }
  row.mutable_version()->set_hlc(hlc);
  row.mutable_version()->set_cluster(cluster);
  return row;
}

mcos::v1::Container Container(const std::string& option) {
  mcos::v1::Container c;
  c.set_name("photos");
  c.set_option(option);
  return c;
}

class MetadataTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = metadata::SqliteMetadataStore::Open(dir_.Sub("controller.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    table_ = std::make_unique<MetadataTable>(*store_, clock_, cluster_id_);
    table_->SetObserver([this](const mcos::v1::MetadataRow& row, bool from_peer) {
      seen_.emplace_back(row.table() + "/" + row.key(), from_peer);
    });
    table_->SetChangeListener([this] { ++local_changes_; });
  }

  // The stored container's option, or "" when none is stored or it is deleted.
  std::string StoredOption() {
    auto row = store_->GetRow(kContainersTable, "alice/photos");
    EXPECT_TRUE(row.ok()) << row.status();
    if (!row.ok() || !row->has_value() || (*row)->tombstone()) return "";
    mcos::v1::Container c;
    EXPECT_TRUE(c.ParseFromString((*row)->value()));
    return c.option();
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::string cluster_id_ = "alpha";
  std::unique_ptr<metadata::SqliteMetadataStore> store_;
  std::unique_ptr<MetadataTable> table_;
  std::vector<std::pair<std::string, bool>> seen_;
  int local_changes_ = 0;
};

TEST_F(MetadataTableTest, TheNewestStampWinsWhereverItWasMade) {
  const auto gold = Container("gold");
  auto won = table_->Put(kContainersTable, "alice/photos", &gold);
  MCOS_ASSERT_OK(won);
  EXPECT_TRUE(*won);
  EXPECT_EQ(local_changes_, 1);
  const uint64_t mine = store_->revision();
  ASSERT_GT(mine, 0u);

  // An older row from a peer loses; a newer one wins and is observed as a peer's.
  const auto silver = Container("silver");
  const uint64_t now_hlc = table_->Stamp().hlc();
  auto applied = table_->Apply({PeerRow(kContainersTable, "alice/photos", &silver, 1)});
  MCOS_ASSERT_OK(applied);
  EXPECT_EQ(*applied, 0u);
  EXPECT_EQ(StoredOption(), "gold");
  applied = table_->Apply({PeerRow(kContainersTable, "alice/photos", &silver, now_hlc + 1000)});
  MCOS_ASSERT_OK(applied);
  EXPECT_EQ(*applied, 1u);
  EXPECT_EQ(StoredOption(), "silver");
  EXPECT_EQ(local_changes_, 1);  // peers' rows are not pushed back as this cluster's changes

  // This cluster's clock has seen the peer's stamp: its next change wins over it.
  const auto bronze = Container("bronze");
  won = table_->Put(kContainersTable, "alice/photos", &bronze);
  MCOS_ASSERT_OK(won);
  EXPECT_TRUE(*won);
  EXPECT_EQ(StoredOption(), "bronze");
  EXPECT_EQ(seen_, (std::vector<std::pair<std::string, bool>>{{"containers/alice/photos", false},
                                                              {"containers/alice/photos", true},
                                                              {"containers/alice/photos", false}}));

  // Replaying rows is harmless; every change after a revision can be pulled again.
  auto rows = table_->RowsAfter(0, 100);
  MCOS_ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);  // one key: its newest row
  EXPECT_EQ((*rows)[0].version().cluster(), "alpha");
  applied = table_->Apply(*rows);
  MCOS_ASSERT_OK(applied);
  EXPECT_EQ(*applied, 0u);
  MCOS_ASSERT_OK(table_->RowsAfter(mine, 100));
}

TEST_F(MetadataTableTest, ABadRowFromAPeerRefusesTheWholeBatch) {
  const auto gold = Container("gold");
  const auto good = PeerRow(kContainersTable, "alice/photos", &gold, 5);
  for (auto bad : {PeerRow("secrets", "k", &gold, 5), PeerRow(kContainersTable, "", &gold, 5),
                   PeerRow(kContainersTable, "alice/x", &gold, 0),
                   PeerRow(kContainersTable, "alice/x", &gold, 5, "")}) {
    auto applied = table_->Apply({good, bad});
    MCOS_EXPECT_CODE(applied, kInvalidArgument);
  }
  auto garbage = good;
  garbage.set_value("\xff\xff\xff not a protobuf");
  MCOS_EXPECT_CODE(table_->Apply({good, garbage}), kInvalidArgument);
  EXPECT_EQ(StoredOption(), "");
  EXPECT_TRUE(seen_.empty());
  // A tombstone needs no value.
  MCOS_ASSERT_OK(table_->Apply({good}));
  MCOS_ASSERT_OK(table_->Apply({PeerRow(kContainersTable, "alice/photos", nullptr, 6)}));
  EXPECT_EQ(StoredOption(), "");
}

}  // namespace
}  // namespace mcos::controller
