# Cross toolchain for board/stm32 (STM32F405, Cortex-M4F):
#   cmake -S . -B build-arm -DCACHET_FIRMWARE_ONLY=ON \
#         -DCMAKE_TOOLCHAIN_FILE=board/stm32/toolchain-arm-none-eabi.cmake
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
find_program(CACHET_ARM_SIZE arm-none-eabi-size REQUIRED)
find_program(CACHET_ARM_NM arm-none-eabi-nm REQUIRED)

# No OS to run test programs on: try_compile builds a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_C_FLAGS_INIT
    "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -ffreestanding -ffunction-sections -fdata-sections")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections -nostartfiles")
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE MinSizeRel CACHE STRING "Build type")
endif()

# The image is linked at fixed addresses: compile no position-independent code
# even though the top level turns CMAKE_POSITION_INDEPENDENT_CODE on for the
# host (the override is read after the compiler's own defaults).
set(CMAKE_USER_MAKE_RULES_OVERRIDE ${CMAKE_CURRENT_LIST_DIR}/no-pic-override.cmake)

# Search the host only for programs; headers and libraries come from the toolchain.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
