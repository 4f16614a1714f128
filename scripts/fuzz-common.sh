# Sourced by scripts/fuzz-decoder, fuzz-flows and fuzz-mapped-records (not run by itself):
# what a swiftc build of TrafficCore's sources with libFuzzer and AddressSanitizer needs
# besides them, as SwiftPM would give it. The C targets' module maps (as SwiftPM makes them
# for an include/ folder) and objects; swift-collections' HeapModule and its
# InternalCollectionsUtilities, built by SwiftPM with AddressSanitizer in a scratch folder
# of their own (their package's settings and experimental features stay SwiftPM's).
#   fuzz_core_dependencies OUT
# sets FUZZ_CORE_FLAGS (swiftc flags that make them importable) and FUZZ_CORE_OBJECTS (to
# link with the harness).
fuzz_core_dependencies() {
    local out=$1 target
    mkdir -p "$out/modules"
    FUZZ_CORE_FLAGS=()
    FUZZ_CORE_OBJECTS=()
    for target in CTrafficCoreShims CMappedFileGuard; do
        printf 'module %s {\n    umbrella header "%s"\n    export *\n}\n' \
            "$target" "$PWD/Sources/$target/include/$target.h" > "$out/modules/$target.modulemap"
        clang -O2 -fsanitize=fuzzer-no-link,address -I "Sources/$target/include" -c Sources/$target/*.c -o "$out/$target.o"
        FUZZ_CORE_FLAGS+=(-Xcc "-fmodule-map-file=$out/modules/$target.modulemap")
        FUZZ_CORE_OBJECTS+=("$out/$target.o")
    done
    local spm=(-c release --scratch-path .build/fuzz-deps --sanitize=address)
    swift build "${spm[@]}" --target HeapModule >/dev/null
    local bin
    bin=$(swift build "${spm[@]}" --show-bin-path)
    FUZZ_CORE_FLAGS+=(-I "$bin/Modules")
    FUZZ_CORE_OBJECTS+=("$bin"/HeapModule.build/*.o "$bin"/InternalCollectionsUtilities.build/*.o)
}
