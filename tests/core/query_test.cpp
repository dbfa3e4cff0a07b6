#include <syncline/core/model/query.hpp>

#include <gtest/gtest.h>

namespace syncline {
namespace {

TEST(QueryTest, ParseLookup) {
    EXPECT_EQ(ParseLookup("author"), std::make_pair(std::string("author"), FilterOp::kExact));
    EXPECT_EQ(ParseLookup("id__gte"), std::make_pair(std::string("id"), FilterOp::kGte));
    EXPECT_EQ(ParseLookup("title__icontains"), std::make_pair(std::string("title"), FilterOp::kIContains));
    EXPECT_EQ(ParseLookup("a__b__in"), std::make_pair(std::string("a__b"), FilterOp::kIn));
    EXPECT_FALSE(ParseLookup("id__bogus"));
    for (int op = 0; op <= static_cast<int>(FilterOp::kStartsWith); ++op) {
        auto parsed = ParseLookup("f__" + std::string(FilterOpName(static_cast<FilterOp>(op))));
        ASSERT_TRUE(parsed);
        EXPECT_EQ(static_cast<int>(parsed->second), op);
    }
}

TEST(QueryTest, ParseOrdering) {
    EXPECT_EQ(ParseOrdering("-id").field, "id");
    EXPECT_TRUE(ParseOrdering("-id").descending);
    EXPECT_FALSE(ParseOrdering("title").descending);
}

}  // namespace
}  // namespace syncline
