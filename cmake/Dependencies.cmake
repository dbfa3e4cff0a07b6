# Every third-party library comes from a Debian package (scripts/debian-packages.txt; GoogleTest and Google Benchmark,
# looked for only when tests or benchmarks are built, from scripts/debian-packages-test.txt). Each find_* runs once,
# here, because some imported targets (websocketpp) fail when defined twice.
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS regex)
find_package(websocketpp CONFIG REQUIRED)
find_package(RapidJSON CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
# libjwt-dev (1.10 on Debian 12): HS256 JWT verification for core's JwtAuthenticator.
pkg_check_modules(LIBJWT REQUIRED IMPORTED_TARGET libjwt)
# libssl-dev: OpenSSL's libcrypto, which libjwt already loads, keys the token fingerprints of log lines (HMAC-SHA256).
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
# libpq-dev (15 on Debian 12): the PostgreSQL storage backend and the tests' pg_sandbox (PostgreSQL::PostgreSQL).
find_package(PostgreSQL REQUIRED)

# RapidJSON's config only sets an include path; wrap it in a target so modules can link it PRIVATE.
add_library(syncline_rapidjson INTERFACE)
target_include_directories(syncline_rapidjson SYSTEM INTERFACE ${RAPIDJSON_INCLUDE_DIRS})
target_compile_definitions(syncline_rapidjson INTERFACE RAPIDJSON_HAS_STDSTRING=1)

if(SYNCLINE_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
  include(GoogleTest)
endif()
if(SYNCLINE_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)
endif()
