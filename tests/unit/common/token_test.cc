#include "common/token.h"

#include <gtest/gtest.h>

namespace mcos::common {
namespace {

mcos::v1::TokenClaims Claims(absl::Time expires) {
  mcos::v1::TokenClaims c;
  c.set_user("alice");
  c.set_role("user");
  c.set_expires_unix(absl::ToUnixSeconds(expires));
  return c;
}

TEST(TokenTest, VerifiesItsOwnTokensUntilTheyExpire) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  TokenSigner signer(std::string(32, 'k'));
  const std::string token = signer.Sign(Claims(now + absl::Hours(1)));
  auto claims = signer.Verify(token, now);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->user(), "alice");
  EXPECT_EQ(signer.Verify(token, now + absl::Hours(2)).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TokenTest, RejectsEveryAlteredSpelling) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  TokenSigner signer(std::string(32, 'k'));
  const std::string token = signer.Sign(Claims(now + absl::Hours(1)));
  // Any single-character change anywhere, including base64's unused low bits.
  for (size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '.') continue;
    for (char repl : {'A', 'B', 'Q', 'g', '-', '_'}) {
      if (repl == token[i]) continue;
      std::string t = token;
      t[i] = repl;
      EXPECT_FALSE(signer.Verify(t, now).ok()) << "position " << i << " -> " << repl;
    }
  }
  EXPECT_FALSE(TokenSigner(std::string(32, 'x')).Verify(token, now).ok());
  EXPECT_FALSE(signer.Verify("", now).ok());
  EXPECT_FALSE(signer.Verify("no-dot", now).ok());
}

}  // namespace
}  // namespace mcos::common
