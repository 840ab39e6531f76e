# crypto (firmware/lib/crypto.h) and the mbedTLS it is built on. Included by
# firmware/CMakeLists.txt.
#  - host builds (board/posix, tests): Debian's libmbedcrypto (libmbedtls-dev);
#  - the Cortex-M cross build: mbedTLS compiled here from Debian's source package,
#    unpacked by scripts/setup into <build>/third_party/mbedtls (never committed),
#    with our own configuration (mbedtls_config.h: no heap, P-256 only).
if(CMAKE_CROSSCOMPILING)
  set(CACHET_MBEDTLS_SRC ${CMAKE_BINARY_DIR}/third_party/mbedtls CACHE PATH
      "mbedTLS sources for the cross build (apt-get source mbedtls; scripts/setup)")
  if(NOT EXISTS ${CACHET_MBEDTLS_SRC}/include/mbedtls/version.h)
    message(FATAL_ERROR "mbedTLS sources not found in ${CACHET_MBEDTLS_SRC}: run scripts/setup "
                        "(CACHET_ARM_BUILD=<this build dir> scripts/setup for another directory)")
  endif()
  # Exactly the modules mbedtls_config.h enables.
  set(_mbedtls_modules asn1parse asn1write bignum constant_time ecdsa ecp ecp_curves hmac_drbg
      md memory_buffer_alloc platform platform_util sha256)
  set(_mbedtls_sources)
  foreach(m ${_mbedtls_modules})
    list(APPEND _mbedtls_sources ${CACHET_MBEDTLS_SRC}/library/${m}.c)
  endforeach()
  add_library(cachet_mbedtls STATIC ${_mbedtls_sources})
  target_include_directories(cachet_mbedtls SYSTEM PUBLIC ${CACHET_MBEDTLS_SRC}/include
                             ${CMAKE_CURRENT_SOURCE_DIR}/lib)
  target_compile_definitions(cachet_mbedtls PUBLIC
                             MBEDTLS_CONFIG_FILE="mbedtls_config.h")
  # Third-party code: our warning set is not theirs.
  target_compile_options(cachet_mbedtls PRIVATE -w)
  set(CACHET_MBEDCRYPTO cachet_mbedtls)
else()
  find_library(MBEDCRYPTO_LIBRARY mbedcrypto REQUIRED)
  find_path(MBEDTLS_INCLUDE_DIR mbedtls/ecdsa.h REQUIRED)
  set(CACHET_MBEDCRYPTO ${MBEDCRYPTO_LIBRARY})
endif()

add_library(cachet_fw_crypto STATIC lib/crypto_mbedtls.c)
target_include_directories(cachet_fw_crypto PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/lib)
if(NOT CMAKE_CROSSCOMPILING)
  target_include_directories(cachet_fw_crypto SYSTEM PRIVATE ${MBEDTLS_INCLUDE_DIR})
endif()
target_link_libraries(cachet_fw_crypto PUBLIC cachet_fw_lib cachet_fw_port PRIVATE ${CACHET_MBEDCRYPTO})
