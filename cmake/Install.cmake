# Installation (`cmake --install`), find_package(syncline) for embedders and the Debian package (`cpack -G DEB`).
# docs/deployment.md describes the result.
#
# Components:
#   runtime      bin/syncline
#   development  the static libraries, the public headers and lib/cmake/syncline (synclineConfig.cmake, exported
#                targets syncline::server, syncline::core, ...)
#   system       /lib/systemd/system/syncline.service and /etc/syncline/config.json: absolute paths, so only installed
#                when asked for by name (EXCLUDE_FROM_ALL); the .deb asks for it.
# `cmake --install build --prefix DIR` installs runtime and development under DIR.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SYNCLINE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/syncline)
set(SYNCLINE_MODULES core auth storage observer transport config)

install(TARGETS syncline RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

set(syncline_library_targets syncline_rapidjson syncline_server)
foreach(module IN LISTS SYNCLINE_MODULES)
  list(APPEND syncline_library_targets syncline_${module})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${module}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          COMPONENT development)
endforeach()
install(TARGETS ${syncline_library_targets} EXPORT synclineTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT synclineTargets NAMESPACE syncline:: DESTINATION ${SYNCLINE_INSTALL_CMAKEDIR} COMPONENT development)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/synclineConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/cmake/synclineConfig.cmake
                              INSTALL_DESTINATION ${SYNCLINE_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/synclineConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/synclineConfig.cmake ${PROJECT_BINARY_DIR}/cmake/synclineConfigVersion.cmake
        DESTINATION ${SYNCLINE_INSTALL_CMAKEDIR} COMPONENT development)

# The packaged config is examples/blog/config.json with its database in the service's state folder: a relative path
# would be read from the config's folder, /etc/syncline, which the unit keeps read-only.
file(READ ${PROJECT_SOURCE_DIR}/examples/blog/config.json syncline_example_config)
string(REGEX REPLACE "\"database\": *\"[^\"]*\"" "\"database\": \"/var/lib/syncline/blog.db\""
       syncline_packaged_config "${syncline_example_config}")
if(syncline_packaged_config STREQUAL syncline_example_config)
  message(FATAL_ERROR "examples/blog/config.json: no \"database\": \"...\" to point at /var/lib/syncline")
endif()
# Its demo page and the client module it imports are shipped under /usr/share/syncline, and its "static" folders
# point there (relative folders would be read from /etc/syncline too).
string(REGEX REPLACE "\"static\": *{[^}]*}"
       "\"static\": {\"/\": \"/usr/share/syncline/web\", \"/client/\": \"/usr/share/syncline/client\"}"
       syncline_static_config "${syncline_packaged_config}")
if(syncline_static_config STREQUAL syncline_packaged_config)
  message(FATAL_ERROR "examples/blog/config.json: no \"static\": {...} to point at /usr/share/syncline")
endif()
set(syncline_packaged_config "${syncline_static_config}")
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/packaging/config.json CONTENT "${syncline_packaged_config}")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/blog/web/ DESTINATION /usr/share/syncline/web COMPONENT system
        EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/clients/js/syncline.mjs DESTINATION /usr/share/syncline/client COMPONENT system
        EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/syncline.service DESTINATION /lib/systemd/system
        COMPONENT system EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_BINARY_DIR}/packaging/config.json DESTINATION /etc/syncline COMPONENT system EXCLUDE_FROM_ALL)

# cpack -G DEB (in the build directory): one package, syncline_<version>_<arch>.deb, with the runtime and system
# components; the libraries and headers stay out of it (a runtime package). Depends is computed by dpkg-shlibdeps
# (dpkg-dev) from the libraries the binary loads.
set(CPACK_PACKAGE_NAME syncline)
set(CPACK_PACKAGE_VENDOR syncline)
set(CPACK_PACKAGE_CONTACT "syncline maintainers <syncline@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "realtime sync server: websocket API for database models (DCRF protocol)")
set(CPACK_PACKAGE_DESCRIPTION "syncline serves the models and routes of a JSON config over websockets, with SQLite \
or PostgreSQL storage and Redis fan-out.")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime system)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server, postgresql")
# /etc/syncline/config.json is the administrator's: an upgrade keeps their edits (dpkg conffile).
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/packaging/conffiles CONTENT "/etc/syncline/config.json\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/packaging/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
