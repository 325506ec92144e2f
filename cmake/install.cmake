# Install rules: the header, both libraries, a CMake package (find_package(fai) gives
# fai::fai and fai::fai_static) and a pkg-config file fai.pc.
include(CMakePackageConfigHelpers)

install(FILES include/fai.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS fai_shared fai_static EXPORT fai-targets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT fai-targets NAMESPACE fai:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fai)

configure_package_config_file(cmake/fai-config.cmake.in ${PROJECT_BINARY_DIR}/fai-config.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fai)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fai-config-version.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fai-config.cmake ${PROJECT_BINARY_DIR}/fai-config-version.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fai)

# fai.pc finds its prefix from its own location, so an installed tree can be moved.
string(REGEX REPLACE "[^/]+" ".." FAI_PC_UP "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
# Newer CMake lists several toolkit include dirs (…/include;…/include/cccl); a ';' in
# Cflags breaks the compile line. cuda_runtime_api.h is in the first.
list(GET CUDAToolkit_INCLUDE_DIRS 0 FAI_PC_CUDA_INCLUDE_DIR)
configure_file(cmake/fai.pc.in ${PROJECT_BINARY_DIR}/fai.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/fai.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
