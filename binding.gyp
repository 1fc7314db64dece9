{
  "targets": [
    {
      "target_name": "ignis",
      "sources": ["<!@(node scripts/native-sources.js)"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "<!@(pkg-config --cflags-only-I openblas | sed s/-I//g)"
      ],
      # libgloo-dev ships no pkg-config file; its headers and library are in the default paths.
      "libraries": ["<!@(pkg-config --libs openblas)", "-lgloo", "-lpthread"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      # -fno-trapping-math, -fno-math-errno: results unchanged; loops with selects and sqrt vectorise
      "cflags_cc": ["-std=c++17", "-O3", "-fno-trapping-math", "-fno-math-errno", "-fexceptions", "-frtti", "-fvisibility=hidden", "-Wall", "-Wno-unused-parameter"]
    }
  ]
}
