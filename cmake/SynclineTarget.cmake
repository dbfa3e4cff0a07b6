# Warnings as errors for our own code only; third-party headers come in as SYSTEM through imported targets.
function(syncline_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wold-style-cast
                                           -Wcast-align -Woverloaded-virtual -Wnull-dereference -Werror)
  if(SYNCLINE_SANITIZE)
    # GCC 12 with sanitizers and optimization reports std::variant/std::optional members as maybe-uninitialized
    # (false positives seen in core/src/serializer.cpp); keep it a warning there rather than a build failure.
    target_compile_options(${target} PRIVATE -Wno-error=maybe-uninitialized)
  endif()
endfunction()

# syncline_module(NAME <name>): a library from <name>/src/*.cpp with public headers in <name>/include. It is known as
# syncline::<name> in the tree and, once installed, to find_package(syncline) (cmake/Install.cmake installs it).
function(syncline_module name)
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp)
  add_library(syncline_${name} STATIC ${sources})
  add_library(syncline::${name} ALIAS syncline_${name})
  set_target_properties(syncline_${name} PROPERTIES EXPORT_NAME ${name})
  # Installed, the headers of every module share one include directory (install(TARGETS ... INCLUDES DESTINATION)).
  target_include_directories(syncline_${name} PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                              PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  syncline_warnings(syncline_${name})
endfunction()
