# Read by CMake after the compiler defaults (CMAKE_USER_MAKE_RULES_OVERRIDE,
# set in toolchain-arm-none-eabi.cmake): the firmware is not relocatable.
set(CMAKE_C_COMPILE_OPTIONS_PIC "")
set(CMAKE_C_COMPILE_OPTIONS_PIE "")
