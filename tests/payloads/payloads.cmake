# The boot tests' programs, in the including directory's build tree: their PID 1, static
# so it runs from a bare initramfs, that initramfs (test-initrd.cpio), and the host end of
# the network and vsock tests. tests/CMakeLists.txt includes this; so does the arm64
# build, whose test init reports through the exit page (docs/arm64.md).
add_executable(test-init ${PROJECT_SOURCE_DIR}/tests/payloads/test_init.cpp)
# A static PID 1 cannot carry the sanitizer runtimes.
target_compile_options(test-init PRIVATE -fno-sanitize=all)
target_link_options(test-init PRIVATE -static -fno-sanitize=all)
add_custom_command(
  OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/test-initrd.cpio
  COMMAND ${PROJECT_SOURCE_DIR}/guest-init/make-initrd ${CMAKE_CURRENT_BINARY_DIR}/test-initrd.cpio $<TARGET_FILE:test-init>
  DEPENDS test-init ${PROJECT_SOURCE_DIR}/guest-init/make-initrd
  COMMENT "Packing the test initramfs")
add_custom_target(test-initrd ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/test-initrd.cpio)
# Static, so the networks' tests can put it into a busybox image as the UDP echo.
add_executable(test-peer ${PROJECT_SOURCE_DIR}/tests/payloads/test_peer.cpp)
target_compile_options(test-peer PRIVATE -fno-sanitize=all)
target_link_options(test-peer PRIVATE -static -fno-sanitize=all)
