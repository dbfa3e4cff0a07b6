# Every third-party library comes from a Debian package (scripts/debian-packages.txt; GoogleTest and Google Benchmark,
# looked for only when tests or benchmarks are built, from scripts/debian-packages-test.txt). Each find_* runs once,
# here, because some imported targets (websocketpp) fail when defined twice.
#
# The installed libraries are static, so a project linking them (find_package(syncline), cmake/synclineConfig.cmake.in)
# needs every library they link, PRIVATE ones included. syncline_find_package and syncline_find_pkgconfig find a
# dependency now and record the same search for the installed synclineConfig.cmake (SYNCLINE_CONFIG_DEPENDENCIES): a
# library any syncline_<module> links is found with one of them, never with a bare find_package. Header-only libraries
# used only inside .cpp files (websocketpp) and the tools of the binary (CLI11) are not recorded.
set(SYNCLINE_CONFIG_DEPENDENCIES "")
# syncline_find_package(<package> [args...]): find_package(<package> [args...] REQUIRED), recorded.
macro(syncline_find_package package)
  find_package(${package} ${ARGN} REQUIRED)
  string(JOIN " " _syncline_dependency_args ${package} ${ARGN})
  string(APPEND SYNCLINE_CONFIG_DEPENDENCIES "find_dependency(${_syncline_dependency_args})\n")
endmacro()
# syncline_find_pkgconfig(<PREFIX> <module>): pkg_check_modules(<PREFIX> REQUIRED IMPORTED_TARGET <module>), which
# defines PkgConfig::<PREFIX>, recorded.
macro(syncline_find_pkgconfig prefix module)
  pkg_check_modules(${prefix} REQUIRED IMPORTED_TARGET ${module})
  string(APPEND SYNCLINE_CONFIG_DEPENDENCIES "syncline_find_pkgconfig(${prefix} ${module})\n")
endmacro()

syncline_find_package(Threads)
syncline_find_package(Boost 1.74 COMPONENTS regex)
find_package(websocketpp CONFIG REQUIRED)
syncline_find_package(RapidJSON CONFIG)
syncline_find_package(SQLite3)
syncline_find_package(spdlog CONFIG)
find_package(CLI11 CONFIG REQUIRED)
syncline_find_package(PkgConfig)
syncline_find_pkgconfig(HIREDIS hiredis)
# libjwt-dev (1.10 on Debian 12): HS256 JWT verification for core's JwtAuthenticator.
syncline_find_pkgconfig(LIBJWT libjwt)
# libssl-dev: OpenSSL's libcrypto, which libjwt already loads, keys the token fingerprints of log lines (HMAC-SHA256).
syncline_find_package(OpenSSL COMPONENTS Crypto)
# libpq-dev (15 on Debian 12): the PostgreSQL storage backend and the tests' pg_sandbox (PostgreSQL::PostgreSQL).
syncline_find_package(PostgreSQL)
# prometheus-cpp-dev: GET /metrics, its core registry and text serializer (no HTTP server of its own).
syncline_find_package(prometheus-cpp CONFIG)

# RapidJSON's config only sets an include path; wrap it in a target so modules can link it PRIVATE. It is installed
# as syncline::rapidjson (core's public headers include RapidJSON); the installed config adds the include path found
# on the embedder's machine.
add_library(syncline_rapidjson INTERFACE)
set_target_properties(syncline_rapidjson PROPERTIES EXPORT_NAME rapidjson)
target_include_directories(syncline_rapidjson SYSTEM INTERFACE $<BUILD_INTERFACE:${RAPIDJSON_INCLUDE_DIRS}>)
target_compile_definitions(syncline_rapidjson INTERFACE RAPIDJSON_HAS_STDSTRING=1)

# The benchmarks share the tests' support libraries, which use GoogleTest.
if(SYNCLINE_BUILD_TESTS OR SYNCLINE_BUILD_BENCHMARKS)
  find_package(GTest CONFIG REQUIRED)
  include(GoogleTest)
endif()
if(SYNCLINE_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)
endif()
