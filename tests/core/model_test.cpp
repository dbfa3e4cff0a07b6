#include <syncline/core/model/model.hpp>

#include <gtest/gtest.h>

namespace app {
struct Post {
    std::int64_t id = 0;
    std::string title;
    std::string body;
    std::optional<std::int64_t> likes;
    bool published = false;
    syncline::DateTime created;
    syncline::Json meta;
    double score = 0;
};
}  // namespace app

template <>
struct syncline::ModelMeta<app::Post> {
    static constexpr std::string_view kTable = "posts";
    static auto Fields() {
        using app::Post;
        return syncline::Fields(syncline::Field("id", &Post::id, FieldOptions().PrimaryKey()),
                                syncline::Field("title", &Post::title, FieldOptions().MaxLength(100)),
                                syncline::Field("body", &Post::body, FieldOptions().Blank().Default("")),
                                syncline::Field("likes", &Post::likes),
                                syncline::Field("published", &Post::published, FieldOptions().Default(false)),
                                syncline::Field("created", &Post::created),
                                syncline::Field("meta", &Post::meta, FieldOptions().Default("{}")),
                                syncline::Field("score", &Post::score, FieldOptions().MinValue(0)));
    }
};

namespace syncline {
namespace {

TEST(ModelTest, SchemaFromTypedStruct) {
    const Schema& s = SchemaOf<app::Post>();
    EXPECT_EQ(s.table(), "posts");
    ASSERT_EQ(s.size(), 8u);
    EXPECT_EQ(s.pk().name, "id");
    EXPECT_EQ(s.field(1).max_length, 100u);
    EXPECT_TRUE(s.field(2).blank);
    EXPECT_TRUE(s.field(3).nullable);  // std::optional member
    EXPECT_EQ(s.field(3).type, FieldType::kInteger);
    EXPECT_EQ(s.field(4).type, FieldType::kBoolean);
    EXPECT_EQ(s.field(5).type, FieldType::kDateTime);
    EXPECT_EQ(s.field(6).type, FieldType::kJson);
    EXPECT_EQ(s.field(7).type, FieldType::kReal);
    EXPECT_EQ(s.field(7).min_value, 0.0);
}

TEST(ModelTest, RowRoundTrip) {
    app::Post p{5, "Hi", "", std::nullopt, true, DateTime{"2024-01-01T00:00:00Z"}, Json{"[1]"}, 1.5};
    Row row = ToRow(p);
    EXPECT_EQ(row[0], Value(5));
    EXPECT_EQ(row[3], Value());
    EXPECT_EQ(row[4], Value(true));
    app::Post back = FromRow<app::Post>(row);
    EXPECT_EQ(back.title, "Hi");
    EXPECT_FALSE(back.likes);
    EXPECT_EQ(back.created, p.created);
    EXPECT_EQ(back.meta, p.meta);
    row[3] = Value(9);
    EXPECT_EQ(FromRow<app::Post>(row).likes, 9);
    row[1] = Value(1);
    EXPECT_THROW(FromRow<app::Post>(row), std::logic_error);
}

}  // namespace
}  // namespace syncline
