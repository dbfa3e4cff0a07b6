#include <syncline/storage/database.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_db.hpp"

namespace syncline::storage {
namespace {

using ::testing::HasSubstr;
using testing::OpenBlog;
using testing::PostsSchema;
using testing::TempDir;

std::string OpenError(const std::string& path, const Schema& schema) {
    DatabaseOptions options;
    options.path = path;
    try {
        Database::Open(options, {schema});
    } catch (const StorageError& e) {
        EXPECT_EQ(e.kind(), StorageError::Kind::kSchema);
        return e.what();
    }
    return "";
}

TEST(MigrationTest, CreatesTablesAndRecordsVersion) {
    TempDir dir;
    auto db = OpenBlog(dir.File("blog.db"));
    EXPECT_EQ(db->SchemaVersion(), 1);
    EXPECT_EQ(db->Count("posts", {}), 0);
    EXPECT_EQ(db->Count("tags", {}), 0);
    EXPECT_EQ(testing::SqliteShell(dir.File("blog.db"), "PRAGMA journal_mode;"), 0);
}

TEST(MigrationTest, ReopenKeepsDataAndVersion) {
    TempDir dir;
    std::string path = dir.File("blog.db");
    {
        auto db = OpenBlog(path);
        db->Insert("posts", {{"title", "kept"}});
    }
    auto db = OpenBlog(path);
    EXPECT_EQ(db->SchemaVersion(), 1);
    auto row = db->Get("posts", "title", Value("kept"));
    ASSERT_TRUE(row);
    EXPECT_EQ((*row)[0], Value(1));
}

TEST(MigrationTest, AddsNewColumnWithDefaultAndBumpsVersion) {
    TempDir dir;
    std::string path = dir.File("blog.db");
    {
        auto db = OpenBlog(path);
        db->Insert("posts", {{"title", "old"}});
    }
    std::vector<FieldSpec> fields = PostsSchema().fields();
    FieldSpec rating;
    rating.name = "rating";
    rating.type = FieldType::kReal;
    rating.default_value = Value(2.5);
    fields.push_back(rating);
    FieldSpec note;
    note.name = "note";
    note.type = FieldType::kText;
    note.nullable = true;
    fields.push_back(note);
    DatabaseOptions options;
    options.path = path;
    auto db = Database::Open(options, {Schema::Build("posts", fields)});
    EXPECT_EQ(db->SchemaVersion(), 2);
    auto row = db->Get("posts", "title", Value("old"));
    ASSERT_TRUE(row);
    EXPECT_EQ(db->Model("posts").Get(*row, "rating"), Value(2.5));
    EXPECT_EQ(db->Model("posts").Get(*row, "note"), Value());
    // The capture triggers were rebuilt: an update's old row carries the new column.
    db->Patch("posts", Value(1), {{"note", "n"}});
    EXPECT_EQ(db->RowVersion("posts", Value(1)), 2);
}

TEST(MigrationTest, RefusesConflictingColumns) {
    TempDir dir;
    std::string path = dir.File("blog.db");
    OpenBlog(path);

    std::vector<FieldSpec> fields = PostsSchema().fields();
    auto retyped = fields;
    retyped[4].type = FieldType::kText;  // likes: integer -> text
    EXPECT_THAT(OpenError(path, Schema::Build("posts", retyped)),
                HasSubstr("table \"posts\", column \"likes\": the database has type INTEGER, the schema declares text"));

    auto dropped_default = fields;
    dropped_default[2].default_value.reset();  // body: NOT NULL DEFAULT '' -> no default
    EXPECT_THAT(OpenError(path, Schema::Build("posts", dropped_default)),
                HasSubstr("table \"posts\", column \"body\": the schema dropped the default of a NOT NULL column"));

    auto now_nullable = fields;
    now_nullable[1].nullable = true;
    EXPECT_THAT(OpenError(path, Schema::Build("posts", now_nullable)),
                HasSubstr("column \"title\": the database column is NOT NULL, the schema allows null"));

    auto required_new = fields;
    FieldSpec extra;
    extra.name = "extra";
    extra.type = FieldType::kText;
    required_new.push_back(extra);
    EXPECT_THAT(OpenError(path, Schema::Build("posts", required_new)),
                HasSubstr("column \"extra\": a new NOT NULL column needs a default"));

    // A refused migration changes nothing: the original schema still opens at version 1.
    EXPECT_EQ(OpenBlog(path)->SchemaVersion(), 1);
}

TEST(MigrationTest, UniqueFieldIsEnforced) {
    TempDir dir;
    auto db = OpenBlog(dir.File("blog.db"));
    db->Insert("tags", {{"slug", "a"}, {"label", "Alpha"}});
    try {
        db->Insert("tags", {{"slug", "b"}, {"label", "Alpha"}});
        FAIL() << "duplicate label accepted";
    } catch (const StorageError& e) {
        EXPECT_EQ(e.kind(), StorageError::Kind::kConstraint);
        EXPECT_THAT(e.what(), HasSubstr("UNIQUE"));
    }
}

TEST(MigrationTest, RefusesInMemoryDatabase) {
    DatabaseOptions options;
    options.path = ":memory:";
    EXPECT_THROW(Database::Open(options, {PostsSchema()}), StorageError);
}

}  // namespace
}  // namespace syncline::storage
