// A second process that writes through the C++ storage API, for the multi-process capture tests.
// Usage: syncline_test_writer DB_PATH COUNT TAG
// Opens DB_PATH with the test blog schema and inserts COUNT posts titled "TAG-<i>", one transaction each.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "test_db.hpp"

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s DB_PATH COUNT TAG\n", argv[0]);
        return 2;
    }
    try {
        auto db = syncline::testing::OpenBlog(argv[1]);
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
