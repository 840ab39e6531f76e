# One warning set for all code (STYLE.md rule 15). Host-only flags are added
# only when building for the host.
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
                    -Wmissing-prototypes -Wformat=2 -Wformat-security
                    -Wvla -Wundef -Wpointer-arith)
if(NOT CACHET_FIRMWARE_ONLY)
  add_compile_definitions(_GNU_SOURCE)
endif()
