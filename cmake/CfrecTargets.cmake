# Helpers that give every cfrec target the same shape: one library per folder,
# public headers under <folder>/include/cfrec/<folder>/, an alias cfrec::<name>,
# warnings applied per target (PRIVATE) rather than globally.

add_library(cfrec_warnings INTERFACE)
target_compile_options(cfrec_warnings INTERFACE -Wall -Wextra)
if(CFREC_WERROR)
  target_compile_options(cfrec_warnings INTERFACE -Werror)
endif()

# cfrec_library(<name> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
function(cfrec_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(cfrec_${name} STATIC ${ARG_SOURCES})
  add_library(cfrec::${name} ALIAS cfrec_${name})
  target_include_directories(cfrec_${name}
    PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(cfrec_${name}
    PUBLIC ${ARG_PUBLIC_DEPS}
    PRIVATE ${ARG_PRIVATE_DEPS} cfrec_warnings)
endfunction()

# cfrec_test(<name> SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s] [SERIAL])
# One GoogleTest binary; each TEST becomes a ctest test, discovered when ctest
# runs (not at build time) so sanitizer builds stay quick to link. SERIAL runs
# its tests with no other test beside them (a latency bound on the whole
# service, whose learner yields the CPU to anything else by design).
function(cfrec_test name)
  cmake_parse_arguments(ARG "SERIAL" "TIMEOUT" "SOURCES;DEPS;LABELS;ENV" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main
    cfrec_warnings)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  # One build target per label (tests_concurrent, tests_kafka, ...) so that a
  # sanitizer build compiles only the tests it runs.
  foreach(label ${ARG_LABELS})
    if(NOT TARGET tests_${label})
      add_custom_target(tests_${label})
    endif()
    add_dependencies(tests_${label} ${name})
  endforeach()
  set(serial)
  if(ARG_SERIAL)
    set(serial RUN_SERIAL TRUE)
  endif()
  # ENV NAME=VALUE...: set for every test of the binary (read at its start).
  set(env)
  if(ARG_ENV)
    set(env ENVIRONMENT "${ARG_ENV}")
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}" ${serial} ${env}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endfunction()
