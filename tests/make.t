#!/bin/sh
# The top Makefile on a fresh machine: `make demo` and `make test` must each succeed in one make invocation
# when the -dev packages are missing at first (issue 10, item 1: pkg-config's flags were read when make parsed
# the Makefile, before `deps` installed the packages, so the first link had no -l flags).
# Simulated in a scratch copy of the Makefile and sources with stand-ins on PATH: dpkg-query and pkg-config
# know no package until apt-get "installs" them (a marker file); cc records its arguments and writes stand-in
# outputs (a unit "test" that prints TAP); pipelines/demo.mk is a stub that records how it was called. The real
# thing, a clean clone running `make demo SMALL=1`, `make test` and `make sanitize`, is .ci/run. This mirrors the `make demo` /
# `make test` block of README.md (tests/docs.t).
. "$(dirname "$0")/lib.sh"
command -v prove > /dev/null || skip_all "prove is absent"

W=$TMP/clone FAKE=$TMP/fake MARK=$TMP/installed
mkdir -p "$W/lib" "$W/tools" "$W/tests/unit" "$W/pipelines" "$FAKE"
cp Makefile "$W/"
cp lib/*.c lib/*.h "$W/lib/"
cp tools/st-* "$W/tools/"
echo 'int main(void) { return 0; }' > "$W/tests/unit/one.c"
printf '#!/bin/sh\necho 1..1; echo ok 1 - a stand-in test\n' > "$W/tests/one.t" && chmod +x "$W/tests/one.t"
: > "$W/tests/unit/tap.h"
cat > "$W/pipelines/demo.mk" <<'EOF'
demo: ; @echo "SMALL=$(SMALL)" > demo-ran
EOF

cat > "$FAKE/pkg-config" <<EOF
#!/bin/sh
[ -e "$MARK" ] || exit 1
case "\$1" in --cflags) echo -DFAKE_INSTALLED ;; --libs) echo -lfake_installed ;; esac
EOF
cat > "$FAKE/dpkg-query" <<EOF
#!/bin/sh
[ -e "$MARK" ] || exit 1
echo 'install ok installed'
EOF
cat > "$FAKE/apt-get" <<EOF
#!/bin/sh
echo "apt-get \$*" >> "$TMP/apt.log"
case "\$1" in install) touch "$MARK" ;; esac
EOF
printf '#!/bin/sh\nexit 0\n' > "$FAKE/npm"
cat > "$FAKE/cc" <<EOF
#!/bin/sh
echo "\$*" >> "$TMP/cc.log"
out=
while [ \$# -gt 0 ]; do [ "\$1" = -o ] && out=\$2; shift; done
case "\$out" in
*.t) printf '#!/bin/sh\necho 1..1; echo ok 1 - a stand-in unit test\n' > "\$out"; chmod +x "\$out" ;;
*) : > "\$out"; chmod +x "\$out" ;;
esac
EOF
printf '#!/bin/sh\nshift; : > "$1"\n' > "$FAKE/ar"
chmod +x "$FAKE"/*
fresh() { rm -rf "$W/build" "$W/bin" "$W/pipelines/demo-ran" "$MARK" "$TMP/apt.log" "$TMP/cc.log"; }
mk() { (cd "$W" && env -u CC -u CFLAGS -u MAKEFLAGS -u MFLAGS PATH="$FAKE:$PATH" make -s "$@") > "$TMP/make.out" 2>&1; }
# every compile has the packages' -I flags and every link their -l flags: the flags were read after deps ran
flags_everywhere() {
	[ -s "$TMP/cc.log" ] &&
		! grep -v -- '-DFAKE_INSTALLED' "$TMP/cc.log" | grep -q . &&
		! grep -- '-o bin/\|-o build/t/' "$TMP/cc.log" | grep -v -q -- '-lfake_installed'
}

fresh
mk demo SMALL=1; ok $? "make demo SMALL=1 on a machine without the packages: one invocation" ||
	sed 's/^/#   /' "$TMP/make.out"
grep -q '^apt-get install.*libmsgpack-dev' "$TMP/apt.log"; ok $? "... deps installed the packages first"
flags_everywhere; ok $? "... every compile and link has the flags of the packages just installed"
[ "$(grep -c -- '-o bin/st-' "$TMP/cc.log")" -eq "$(ls tools/*.c | wc -l)" ]; ok $? "... every C tool linked"
is "$(cat "$W/pipelines/demo-ran" 2>/dev/null)" "SMALL=1" "... then the demo ran, with SMALL=1 passed on"

fresh
mk test; ok $? "make test on a machine without the packages: one invocation" || sed 's/^/#   /' "$TMP/make.out"
grep -q '^apt-get install' "$TMP/apt.log"; ok $? "... installs what is missing first"
flags_everywhere; ok $? "... every compile and link has the packages' flags"
grep -q 'All tests successful' "$TMP/make.out"; ok $? "... and prove ran the tests"

rm -f "$TMP/apt.log" "$TMP/cc.log"
mk test; ok $? "make test again, everything present"
[ ! -e "$TMP/apt.log" ]; ok $? "... calls no apt-get"

# the test can tell: the old Makefile's shape (flags read when make parses it, `demo: deps all` in the same
# make) leaves the links without -l flags
fresh
sed -i 's/^PKG_CFLAGS = /PKG_CFLAGS := /; s/^PKG_LIBS = /PKG_LIBS := /; s/^demo: deps$/demo: deps all/; /^\t$(MAKE) all$/d' \
	"$W/Makefile"
grep -q '^demo: deps all$' "$W/Makefile" && grep -q '^PKG_LIBS := ' "$W/Makefile"; ok $? "control: the old Makefile rebuilt"
mk demo SMALL=1
! flags_everywhere; ok $? "control: the check above fails on it"
done_testing
