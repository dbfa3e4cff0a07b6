// StableHash64 names things several processes must agree on (the default channel prefix of a database, shortened
// PostgreSQL object names): a change of its values would make nodes of two syncline versions stop hearing each other
// and leave old triggers behind. The values are pinned (FNV-1a with a basis a digit short of the published one, as
// the first channel prefixes were computed; see stable_hash.hpp).

#include <syncline/core/support/stable_hash.hpp>

#include <gtest/gtest.h>

namespace syncline {
namespace {

TEST(StableHashTest, ValuesNeverChange) {
    EXPECT_EQ(StableHash64(""), 1469598103934665603ull);
    EXPECT_EQ(StableHash64("a"), 4953267810257967366ull);
    EXPECT_EQ(StableHash64("foobar"), 9870438755804841970ull);
    EXPECT_EQ(StableHashHex("a"), "44bd8ad473cd9906");
    EXPECT_EQ(StableHashHex(""), "14650fb0739d0383");  // always 16 digits
}

}  // namespace
}  // namespace syncline
