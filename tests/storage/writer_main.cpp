// A second process that writes through the C++ storage API, for the multi-process capture and push tests.
// Usage: syncline_test_writer DATABASE COUNT TAG         inserts COUNT posts titled "TAG-<i>", one transaction each
//        syncline_test_writer DATABASE patch PK TITLE    sets the title of post PK
// Opens DATABASE (an SQLite path or a postgresql:// URL) with the test blog schema (tests/storage/test_db.hpp).

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "test_db.hpp"

int main(int argc, char** argv) {
    if (argc != 4 && !(argc == 5 && std::strcmp(argv[2], "patch") == 0)) {
        std::fprintf(stderr, "usage: %s DB_PATH COUNT TAG | %s DB_PATH patch PK TITLE\n", argv[0], argv[0]);
        return 2;
    }
    try {
        auto db = syncline::testing::OpenBlogBackend(argv[1]);
        if (argc == 5) {
            auto row = db->Patch("posts", syncline::Value(static_cast<std::int64_t>(std::atoll(argv[3]))), {{"title", std::string(argv[4])}});
            return row ? 0 : 3;
        }
        int count = std::atoi(argv[2]);
        for (int i = 0; i < count; ++i) {
            db->Insert("posts", {{"title", std::string(argv[3]) + "-" + std::to_string(i)}});
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "syncline_test_writer: %s\n", e.what());
        return 1;
    }
    return 0;
}
