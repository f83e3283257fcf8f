# ps_add_test(NAME SOURCES a.cc b.cc LIBS lib1 lib2 [LABELS l]): one GoogleTest executable,
# each of its tests registered with ctest. PS_SOURCE_DIR / PS_SHARED_DATA are passed as
# compile definitions so tests find fixtures and ../shared/data.
function(ps_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    PS_SOURCE_DIR="${PROJECT_SOURCE_DIR}" PS_SHARED_DATA="${PS_SHARED_DATA}"
    PS_BINARY_DIR="${PROJECT_BINARY_DIR}")
  ps_warnings(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 120 PROPERTIES LABELS "${T_LABELS}")
endfunction()
