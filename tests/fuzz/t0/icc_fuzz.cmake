# Shared by the icc fuzz targets (atr, t0, t1). cachet_fuzz_target compiles
# only the harness with -fsanitize=fuzzer; libFuzzer would then be blind to
# the library's branches. icc_fuzz_instrument(NAME) relinks fuzz_NAME against
# a copy of cachet_fw_icc built with -fsanitize=fuzzer-no-link.
if(CACHET_LIBFUZZER AND NOT TARGET cachet_fw_icc_fuzzcov)
  get_target_property(_icc_src cachet_fw_icc SOURCES)
  get_target_property(_icc_dir cachet_fw_icc SOURCE_DIR)
  list(TRANSFORM _icc_src PREPEND "${_icc_dir}/")
  add_library(cachet_fw_icc_fuzzcov STATIC ${_icc_src})
  target_include_directories(cachet_fw_icc_fuzzcov PUBLIC ${_icc_dir})
  target_link_libraries(cachet_fw_icc_fuzzcov PUBLIC cachet_fw_lib cachet_fw_port)
  target_compile_options(cachet_fw_icc_fuzzcov PRIVATE -fsanitize=fuzzer-no-link)
endif()

function(icc_fuzz_instrument name)
  if(TARGET fuzz_${name})
    set_property(TARGET fuzz_${name} PROPERTY LINK_LIBRARIES cachet_fw_icc_fuzzcov)
  endif()
endfunction()
