# Post-build check (cmake -P): the firmware image must not contain a heap
# allocator (STYLE.md rule 5). Arguments: -DNM=<arm-none-eabi-nm> -DELF=<image>.
execute_process(COMMAND ${NM} ${ELF} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm failed on ${ELF}")
endif()
string(REGEX MATCHALL "[ \t](malloc|_malloc_r|calloc|_calloc_r|realloc|_realloc_r|free|_free_r|_sbrk|_sbrk_r)\n" found "${syms}")
if(found)
  message(FATAL_ERROR "heap allocator linked into ${ELF}: ${found}")
endif()
message(STATUS "no heap allocator in ${ELF}")
