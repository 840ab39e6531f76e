# Helpers for tests: cmocka unit tests and fuzz targets whose corpora CTest replays.

find_library(CMOCKA_LIBRARY cmocka REQUIRED)

# cachet_unit_test(NAME SOURCES f.c... [LIBS l...])
# One cmocka executable per module, registered in CTest under unit.NAME.
function(cachet_unit_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(unit_${name} ${ARG_SOURCES})
  target_link_libraries(unit_${name} PRIVATE ${ARG_LIBS} ${CMOCKA_LIBRARY})
  add_test(NAME unit.${name} COMMAND unit_${name})
  set_tests_properties(unit.${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

# cachet_fuzz_target(NAME SOURCES f.c... [LIBS l...] [INCLUDES dir...] CORPUS dir)
# The target defines LLVMFuzzerTestOneInput. Always built with a replay main
# (tests/fuzz/replay_main.c) and registered as fuzz.NAME replaying every file of
# CORPUS; with CACHET_LIBFUZZER also built as a real libFuzzer binary fuzz_NAME
# (all code is then built with coverage instrumentation, see CMakeLists.txt).
function(cachet_fuzz_target name)
  cmake_parse_arguments(ARG "" "CORPUS" "SOURCES;LIBS;INCLUDES" ${ARGN})
  add_executable(replay_${name} ${ARG_SOURCES}
                 ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.c)
  target_link_libraries(replay_${name} PRIVATE ${ARG_LIBS})
  target_include_directories(replay_${name} PRIVATE ${ARG_INCLUDES})
  add_test(NAME fuzz.${name} COMMAND replay_${name} ${ARG_CORPUS})
  set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT 300)
  if(CACHET_LIBFUZZER)
    add_executable(fuzz_${name} ${ARG_SOURCES})
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${name} PRIVATE ${ARG_LIBS})
    target_include_directories(fuzz_${name} PRIVATE ${ARG_INCLUDES})
  endif()
endfunction()
