#include "common/names.h"

#include <gtest/gtest.h>

#include <string>

namespace mcos::common {
namespace {

TEST(NamesTest, AcceptsOrdinaryAndMultiByteNames) {
  EXPECT_TRUE(ValidateContainerName("photos").ok());
  EXPECT_TRUE(ValidateContainerName("ảnh-2026 ✓").ok());
  EXPECT_TRUE(ValidateContainerName(std::string(255, 'c')).ok());
  EXPECT_TRUE(ValidateObjectName("a/b/c.txt").ok());
  EXPECT_TRUE(ValidateObjectName("Tài liệu/日本語/😀").ok());
  EXPECT_TRUE(ValidateObjectName(std::string(1024, 'o')).ok());
}

TEST(NamesTest, RejectsEmptyAndOversizedNames) {
  EXPECT_EQ(ValidateContainerName("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateObjectName("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateContainerName(std::string(256, 'c')).code(),
            absl::StatusCode::kInvalidArgument);
  const auto s = ValidateObjectName(std::string(1025, 'o'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1025"), absl::string_view::npos) << s;
}

TEST(NamesTest, RejectsSlashInContainerOnly) {
  EXPECT_EQ(ValidateContainerName("a/b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateObjectName("a/b").ok());
}

TEST(NamesTest, RejectsNulAndControlCharacters) {
  EXPECT_EQ(ValidateObjectName(std::string("a\0b", 3)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateObjectName("a\nb").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateObjectName("a\x7f").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateContainerName("tab\there").code(), absl::StatusCode::kInvalidArgument);
}

TEST(NamesTest, RejectsInvalidUtf8) {
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));   // U+1F600
  EXPECT_EQ(ValidateObjectName("bad\xff").code(), absl::StatusCode::kInvalidArgument);
}

TEST(NamesTest, UserNames) {
  EXPECT_TRUE(ValidateUserName("alice").ok());
  EXPECT_TRUE(ValidateUserName("a.b_c-9").ok());
  EXPECT_FALSE(ValidateUserName("").ok());
  EXPECT_FALSE(ValidateUserName("-x").ok());
  EXPECT_FALSE(ValidateUserName("a/b").ok());
  EXPECT_FALSE(ValidateUserName(std::string(65, 'a')).ok());
}

TEST(NamesTest, MetadataLimits) {
  google::protobuf::Map<std::string, std::string> m;
  m["color"] = "blue";
  EXPECT_TRUE(ValidateUserMetadata(m).ok());
  m[""] = "x";
  EXPECT_FALSE(ValidateUserMetadata(m).ok());
  m.erase("");
  m["big"] = std::string(kMaxMetadataBytes, 'v');
  EXPECT_FALSE(ValidateUserMetadata(m).ok());
  EXPECT_TRUE(ValidateContentType("text/plain; charset=utf-8").ok());
  EXPECT_FALSE(ValidateContentType("text\n").ok());
}

}  // namespace
}  // namespace mcos::common
