// The error categories: websocket close codes (CloseCode) and store failures (StoreErrc), their names and messages,
// and StoreError carrying its kind as a std::error_code.

#include <syncline/core/protocol/close_code.hpp>

#include <syncline/core/model/store.hpp>

#include <gtest/gtest.h>

#include <system_error>

namespace syncline {
namespace {

TEST(CloseCodeTest, EveryCodeSentHasItsWireValueAndAMessage) {
    EXPECT_EQ(ToInt(CloseCode::kNormal), 1000);
    EXPECT_EQ(ToInt(CloseCode::kGoingAway), 1001);
    EXPECT_EQ(ToInt(CloseCode::kInvalidPayload), 1007);
    EXPECT_EQ(ToInt(CloseCode::kPolicyViolation), 1008);
    EXPECT_EQ(ToInt(CloseCode::kMessageTooBig), 1009);
    EXPECT_EQ(ToInt(CloseCode::kInternalError), 1011);
    EXPECT_EQ(ToInt(CloseCode::kTryAgainLater), 1013);
    std::error_code ec = CloseCode::kPolicyViolation;
    EXPECT_EQ(ec.value(), 1008);
    EXPECT_EQ(&ec.category(), &close_category());
    EXPECT_STREQ(ec.category().name(), "websocket close");
    EXPECT_EQ(ec.message(), "policy violation");
    EXPECT_EQ(std::error_code(CloseCode::kNormal).message(), "normal closure");
    EXPECT_EQ(std::error_code(CloseCode::kGoingAway).message(), "going away");
    EXPECT_EQ(std::error_code(CloseCode::kInvalidPayload).message(), "invalid frame payload data");
    EXPECT_EQ(std::error_code(CloseCode::kMessageTooBig).message(), "message too big");
    EXPECT_EQ(std::error_code(CloseCode::kInternalError).message(), "internal server error");
    EXPECT_EQ(std::error_code(CloseCode::kTryAgainLater).message(), "try again later");
    EXPECT_EQ(close_category().message(4000), "close code 4000");
    EXPECT_TRUE(ec == CloseCode::kPolicyViolation);
    EXPECT_FALSE(ec == StoreErrc::kBusy);  // same value space, other category
}

TEST(StoreErrcTest, EveryKindHasAMessageAndStoreErrorCarriesIt) {
    EXPECT_STREQ(store_category().name(), "store");
    EXPECT_EQ(std::error_code(StoreErrc::kInvalid).message(), "invalid value");
    EXPECT_EQ(std::error_code(StoreErrc::kConstraint).message(), "constraint violated");
    EXPECT_EQ(std::error_code(StoreErrc::kBusy).message(), "database busy");
    EXPECT_EQ(std::error_code(StoreErrc::kSchema).message(), "schema mismatch");
    EXPECT_EQ(std::error_code(StoreErrc::kIo).message(), "database failure");
    EXPECT_EQ(std::error_code(StoreErrc::kNotFound).message(), "row not found");
    EXPECT_EQ(store_category().message(99), "store error 99");
    // A kind is never 0, the value error_code reads as success.
    EXPECT_TRUE(static_cast<bool>(std::error_code(StoreErrc::kInvalid)));

    StoreError error(StoreErrc::kBusy, "database is locked");
    EXPECT_EQ(error.kind(), StoreErrc::kBusy);
    EXPECT_TRUE(error.code() == StoreErrc::kBusy);
    EXPECT_EQ(&error.code().category(), &store_category());
    EXPECT_STREQ(error.what(), "database is locked");  // the message alone, as before
    StoreError invalid(StoreErrc::kInvalid, "posts: invalid", {{"title", "This field is required."}});
    ASSERT_EQ(invalid.field_errors().size(), 1u);
    EXPECT_EQ(invalid.code().message(), "invalid value");
}

}  // namespace
}  // namespace syncline
