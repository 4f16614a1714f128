# Sourced by scripts/fuzz-decoder, fuzz-flows and fuzz-mapped-records (not run by itself):
# what a swiftc build of TrafficCore's sources with libFuzzer and AddressSanitizer needs
# besides them, as SwiftPM would give it. The C targets' module maps (as SwiftPM makes them
# for an include/ folder) and objects; swift-collections' HeapModule and its
# dependencies, built by SwiftPM with AddressSanitizer in a scratch folder of their own
# (their package's settings and experimental features stay SwiftPM's).
# FUZZ_OUT, when set, is the folder a fuzz script works in (its corpus grows there), and
# FUZZ_SEED libFuzzer's seed: scripts/test runs each harness briefly in a fresh folder.
#   fuzz_core_dependencies OUT [C_TARGET ...]
# sets FUZZ_CORE_FLAGS (swiftc flags that make them importable) and FUZZ_CORE_OBJECTS (to
# link with the harness): TrafficCore's C target and HeapModule, and the C targets named
# (TrafficCapture's CMappedFileGuard, for a harness that compiles TrafficCapture too).
fuzz_core_dependencies() {
    local out=$1 target source
    shift
    mkdir -p "$out/modules"
    FUZZ_CORE_FLAGS=()
    FUZZ_CORE_OBJECTS=()
    for target in CTrafficCoreShims "$@"; do
        printf 'module %s {\n    umbrella header "%s"\n    export *\n}\n' \
            "$target" "$PWD/Sources/$target/include/$target.h" > "$out/modules/$target.modulemap"
        FUZZ_CORE_FLAGS+=(-Xcc "-fmodule-map-file=$out/modules/$target.modulemap")
        for source in Sources/$target/*.c; do
            local object=$out/$target-$(basename "$source" .c).o
            clang -O2 -fsanitize=fuzzer-no-link,address -I "Sources/$target/include" -c "$source" -o "$object"
            FUZZ_CORE_OBJECTS+=("$object")
        done
    done
    local spm=(-c release --scratch-path .build/fuzz-deps --sanitize=address)
    swift build "${spm[@]}" --target HeapModule >/dev/null
    local bin
    bin=$(swift build "${spm[@]}" --show-bin-path)
    FUZZ_CORE_FLAGS+=(-I "$bin/Modules")
    # The scratch folder builds only HeapModule and what it depends on: link all of it.
    FUZZ_CORE_OBJECTS+=("$bin"/*.build/*.o)
}
