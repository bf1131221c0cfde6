#include "common/hash.h"

#include <gtest/gtest.h>

namespace mcos::common {
namespace {

TEST(HashTest, KnownDigests) {
  auto md5 = StreamingDigest::Md5();
  md5.Update("ab");
  md5.Update("c");
  EXPECT_EQ(md5.FinishHex(), "900150983cd24fb0d6963f7d28e17f72");
  auto sha = StreamingDigest::Sha256();
  sha.Update("abc");
  EXPECT_EQ(sha.FinishHex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto empty = StreamingDigest::Md5();
  EXPECT_EQ(empty.FinishHex(), "d41d8cd98f00b204e9800998ecf8427e");
}

TEST(HashTest, ChunkChecksumDependsOnDataAndSeed) {
  EXPECT_EQ(ChunkChecksum("data", 1), ChunkChecksum("data", 1));
  EXPECT_NE(ChunkChecksum("data", 1), ChunkChecksum("data", 2));
  EXPECT_NE(ChunkChecksum("data", 1), ChunkChecksum("dbta", 1));
}

TEST(HashTest, IsHex) {
  EXPECT_TRUE(IsHex("00ffAA", 6));
  EXPECT_FALSE(IsHex("00ffA", 6));
  EXPECT_FALSE(IsHex("00ffAg", 6));
}

}  // namespace
}  // namespace mcos::common
