#!/usr/bin/env python3
"""What the packaged binary links in statically, for debian/copyright and Static-Built-Using.

Reads the linker's list of object files (which modules went into the binary), finds each module's
package among the build's checkouts, and writes:
  - the copyright file: contactd's own paragraph, one paragraph per Swift package linked in and
    per library vendored inside one (BoringSSL, llhttp, libyaml), the Swift toolchain's runtime
    (standard library, Foundation, ICU's data, Dispatch), and the text of each licence named;
  - on stdout, the Static-Built-Using value: every one of them with its version.

Usage: components.py LINK_FILE_LIST CHECKOUTS_DIR PACKAGE_RESOLVED SWIFT_VERSION COPYRIGHT_IN COPYRIGHT_OUT
"""
import json
import pathlib
import re
import sys

link_list, checkouts, resolved, swift_version, copyright_in, copyright_out = sys.argv[1:7]

# Modules of the linked objects: .../release/<Module>.build/[subdirectories/]<file>.o
modules = set()
for line in pathlib.Path(link_list).read_text().split():
    match = re.search(r"/release/([^/]+)\.build/.*\.o$", line.strip("'\""))
    if match:
        modules.add(match.group(1))

pins = {}
for pin in json.loads(pathlib.Path(resolved).read_text())["pins"]:
    name = pin["location"].rstrip("/").removesuffix(".git").split("/")[-1]
    pins[name.lower()] = (pin["location"], pin["state"].get("version") or pin["state"]["revision"][:12])

packages = {}  # checkout name -> modules of it linked in
for checkout in sorted(pathlib.Path(checkouts).iterdir()):
    sources = checkout / "Sources"
    if not sources.is_dir():
        continue
    # A target's sources are in Sources/<name> unless its manifest names another path: then the
    # manifest declares it (`.target(name: "SystemPackage", path: "Sources/System")`).
    manifest = (checkout / "Package.swift").read_text() if (checkout / "Package.swift").exists() else ""
    declared = set(re.findall(r'(?:\.target|\.systemLibrary)\(\s*name:\s*"([^"]+)"', manifest))
    linked = sorted(m for m in modules if (sources / m).is_dir() or m in declared)
    if linked:
        packages[checkout.name] = linked


def licence_of(checkout):
    for name in ("LICENSE.txt", "LICENSE", "LICENSE.md", "COPYING"):
        path = pathlib.Path(checkouts) / checkout / name
        if path.exists():
            text = path.read_text(errors="replace")
            if "Apache License" in text and "Version 2.0" in text:
                return "Apache-2.0"
            if "Permission is hereby granted, free of charge" in text:
                return "MIT"
    sys.exit(f"components.py: cannot tell the licence of {checkout}; add it here")


def holder_of(checkout):
    for name in ("NOTICE.txt", "NOTICE", "LICENSE.txt", "LICENSE"):
        path = pathlib.Path(checkouts) / checkout / name
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                match = re.search(r"Copyright\s*(?:\(c\)|©)?\s*(\d{4}.*)", line)
                if match and "[yyyy]" not in line and "{yyyy}" not in line:
                    return match.group(1).strip().rstrip(".")
    return f"the {checkout} authors"


# Libraries vendored inside a package, under their own licences.
vendored = {
    "CNIOBoringSSL": ("BoringSSL (in swift-nio-ssl)", "swift-nio-ssl",
                      "1998-2011 The OpenSSL Project, 1995-1998 Eric Young, 2015-2024 Google Inc.",
                      "OpenSSL and ISC"),
    "CCryptoBoringSSL": ("BoringSSL (in swift-crypto)", "swift-crypto",
                         "1998-2011 The OpenSSL Project, 1995-1998 Eric Young, 2015-2024 Google Inc.",
                         "OpenSSL and ISC"),
    "CNIOLLHTTP": ("llhttp (in swift-nio)", "swift-nio", "Fedor Indutny and other Node.js contributors", "MIT"),
    "CYaml": ("libyaml (in Yams)", "Yams", "2006-2016 Kirill Simonov, 2017-2020 Ingy döt Net", "MIT"),
}
toolchain = [
    ("Swift standard library and runtime", "swift", "2014-2025 Apple Inc. and the Swift project authors",
     "Apache-2.0 with Swift Runtime Library Exception"),
    ("Foundation (swift-corelibs-foundation, swift-foundation)", "swift-foundation",
     "2014-2025 Apple Inc. and the Swift project authors", "Apache-2.0 with Swift Runtime Library Exception"),
    ("ICU and its data (swift-foundation-icu)", "swift-foundation-icu", "2016-2025 Unicode, Inc.", "Unicode-3.0"),
    ("Dispatch (swift-corelibs-libdispatch)", "swift-corelibs-libdispatch",
     "2008-2025 Apple Inc. and the Swift project authors", "Apache-2.0 with Swift Runtime Library Exception"),
    # lintian finds a zlib (1.3.2.1) in the binary beside Debian's, which contactd links dynamically;
    # it comes with the toolchain's static libraries.
    ("zlib, as the toolchain's static libraries carry it", "zlib", "1995-2024 Jean-loup Gailly and Mark Adler",
     "Zlib", "1.3.2.1"),
]

paragraphs = []
built_using = []
for checkout, linked in packages.items():
    location, version = pins.get(checkout.lower(), (f"https://github.com/{checkout}", "unknown"))
    paragraphs.append(
        f"Files: swift-packages/{checkout}/*\n"
        f"Copyright: {holder_of(checkout)}\n"
        f"License: {licence_of(checkout)}\n"
        f"Comment: {location} {version}, linked in statically (modules: {', '.join(linked)})."
    )
    built_using.append(f"{checkout.lower()} (= {version})")
    for module in linked:
        if module in vendored:
            what, inside, holder, licence = vendored[module]
            paragraphs.append(
                f"Files: swift-packages/{inside}/Sources/{module}/*\n"
                f"Copyright: {holder}\n"
                f"License: {licence}\n"
                f"Comment: {what}, linked in statically."
            )
for what, name, holder, licence, *version in toolchain:
    paragraphs.append(
        f"Files: swift-toolchain/{name}/*\n"
        f"Copyright: {holder}\n"
        f"License: {licence}\n"
        f"Comment: {what} from the Swift {swift_version} toolchain, linked in statically."
    )
    built_using.append(f"{name} (= {version[0] if version else swift_version})")

missing = sorted(m for m in modules if not any(m in linked for linked in packages.values()))
own = pathlib.Path(copyright_in).read_text().rstrip("\n")
licences = pathlib.Path(copyright_in).with_name("licences").read_text().rstrip("\n")
pathlib.Path(copyright_out).write_text(
    own + "\n\n" + "\n\n".join(paragraphs) + "\n\n" + licences + "\n"
)
print(", ".join(built_using))
print(f"components.py: {len(packages)} packages linked in; contactd's own and the toolchain's modules: "
      f"{', '.join(missing)}", file=sys.stderr)
