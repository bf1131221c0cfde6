#include "server/credential_cache.h"

#include <gtest/gtest.h>

#include "tests/support/status_matchers.h"

namespace mcos::server {
namespace {

mcos::v1::TokenClaims Claims(const std::string& user, const std::string& uid, uint64_t generation,
                             const std::string& role = "user") {
  mcos::v1::TokenClaims c;
  c.set_user(user);
  c.set_uid(uid);
  c.set_generation(generation);
  c.set_role(role);
  return c;
}

mcos::v1::CredentialsSnapshot Snapshot(uint64_t revision,
                                       std::vector<mcos::v1::Credential> credentials) {
  mcos::v1::CredentialsSnapshot s;
  s.set_revision(revision);
  for (auto& c : credentials) *s.add_credentials() = std::move(c);
  return s;
}

mcos::v1::Credential Credential(const std::string& name, const std::string& uid,
                                uint64_t generation, const std::string& role = "user") {
  mcos::v1::Credential c;
  c.set_name(name);
  c.set_uid(uid);
  c.set_generation(generation);
  c.set_role(role);
  return c;
}

TEST(CredentialCacheTest, RefusesUntilLoaded) {
  CredentialCache cache("test");
  MCOS_EXPECT_CODE(cache.Check(Claims("alice", "alice", 1)), kUnavailable);
}

TEST(CredentialCacheTest, AcceptsOnlyTheCurrentIdentityGenerationAndRole) {
  CredentialCache cache("test");
  cache.Apply(
      Snapshot(5, {Credential("alice", "alice", 2), Credential("bob", "_00112233aabbccdd", 1),
                   Credential("root", "root", 1, "admin")}));
  MCOS_EXPECT_OK(cache.Check(Claims("alice", "alice", 2)));
  MCOS_EXPECT_CODE(cache.Check(Claims("alice", "alice", 1)), kUnauthenticated);  // old password
  MCOS_EXPECT_CODE(cache.Check(Claims("alice", "alice", 2, "admin")), kUnauthenticated);
  MCOS_EXPECT_OK(cache.Check(Claims("bob", "_00112233aabbccdd", 1)));
  MCOS_EXPECT_CODE(cache.Check(Claims("bob", "bob", 1)), kUnauthenticated);  // the old bob
  MCOS_EXPECT_CODE(cache.Check(Claims("carol", "carol", 1)), kUnauthenticated);
  // Tokens from before identities existed carry no uid: their identity is the name.
  MCOS_EXPECT_OK(cache.Check(Claims("root", "", 1, "admin")));
}

TEST(CredentialCacheTest, ASnapshotReplacesTheUsersAndUnchangedKeepsThem) {
  CredentialCache cache("test");
  cache.Apply(Snapshot(5, {Credential("alice", "alice", 1)}));
  mcos::v1::CredentialsSnapshot unchanged;
  unchanged.set_revision(5);
  unchanged.set_unchanged(true);
  cache.Apply(unchanged);
  MCOS_EXPECT_OK(cache.Check(Claims("alice", "alice", 1)));
  cache.Apply(Snapshot(6, {}));  // alice removed
  MCOS_EXPECT_CODE(cache.Check(Claims("alice", "alice", 1)), kUnauthenticated);
}

}  // namespace
}  // namespace mcos::server
