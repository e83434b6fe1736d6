# Builds jaildaemon with cargo and installs it for the administrator.
#
#   make                  cargo build --release
#   make install          binary, man page, the platform's service file, and on Linux the
#                         LXC start-host hook
#   make check            sets up a Debian 12 machine for the tests (as root), then runs them
#   make deb              a Debian package, jaildaemon_VERSION_ARCH.deb in DEBDIR (debian/rules,
#                         which runs this Makefile's build and install with a /usr layout)
#   make uninstall        removes exactly the files `make install` put in place
#
# Variables (each can be given on the command line or in the environment):
#   PREFIX   /usr/local
#   DESTDIR  empty; a staging root put before every installed path (packages, tests)
#   BINDIR   $(PREFIX)/bin, where jaildaemon 0.2 installed it and where its users' jail.conf
#            lines and scripts name it
#   MANDIR   $(PREFIX)/man on FreeBSD (as ports do), $(PREFIX)/share/man elsewhere;
#            the page goes to $(MANDIR)/man8
#   RCDIR    $(PREFIX)/etc/rc.d, where FreeBSD's rc(8) looks for local scripts
#   UNITDIR  $(PREFIX)/lib/systemd/system, which systemd searches for units
#   HOOKDIR  $(PREFIX)/libexec/jaildaemon, for the LXC start-host hook (Linux only)
#   SERVICE  rc on FreeBSD, systemd on Linux, none elsewhere (or to install no service file)
#   UNAME    the output of `uname -s`; set it to install another system's layout
#   DEBDIR   where `make deb` puts the package: the source tree
#   BIN      the binary to install; by default the release build, made by cargo when the
#            sources are newer. Given explicitly, cargo is not run.
#
# Written for both GNU make and BSD make (FreeBSD's make): no conditionals or functions of
# either, only `?=` and `!=` assignments and plain rules. Every recipe is a single shell line,
# so that each runs the same under both.

PREFIX ?= /usr/local
DESTDIR ?=
UNAME != uname -s
BINDIR ?= $(PREFIX)/bin
MANSUBDIR != case "$(UNAME)" in FreeBSD) echo man ;; *) echo share/man ;; esac
MANDIR ?= $(PREFIX)/$(MANSUBDIR)
RCDIR ?= $(PREFIX)/etc/rc.d
UNITDIR ?= $(PREFIX)/lib/systemd/system
HOOKDIR ?= $(PREFIX)/libexec/jaildaemon
DEBDIR ?= .
SERVICE != case "$(UNAME)" in FreeBSD) echo rc ;; Linux) echo systemd ;; *) echo none ;; esac
HOOKS != case "$(UNAME)" in Linux) echo lxc ;; *) echo none ;; esac

CARGO ?= cargo
INSTALL ?= install
CARGO_TARGET_DIR ?= target
RELEASE = $(CARGO_TARGET_DIR)/release/jaildaemon
BIN ?= $(RELEASE)
# What the release binary is built from; cargo itself decides what to recompile.
SOURCES != find Cargo.toml Cargo.lock build.rs src probe -type f

# The service files and the hook name the binary by its default path; an install elsewhere
# rewrites it.
DEFAULT_BIN = /usr/local/bin/jaildaemon

all: $(RELEASE)

$(RELEASE): $(SOURCES)
	$(CARGO) build --release && touch "$(RELEASE)"

install: install-bin install-man install-service-$(SERVICE) install-hooks-$(HOOKS)

install-bin: $(BIN)
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(BINDIR)" && $(INSTALL) -m 0755 "$(BIN)" "$(DESTDIR)$(BINDIR)/jaildaemon"

install-man:
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(MANDIR)/man8" && $(INSTALL) -m 0644 jaildaemon.8 "$(DESTDIR)$(MANDIR)/man8/jaildaemon.8"

install-service-rc:
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(RCDIR)" && sed -e 's|$(DEFAULT_BIN)|$(BINDIR)/jaildaemon|g' dist/freebsd/jaildaemon > "$(DESTDIR)$(RCDIR)/jaildaemon" && chmod 0755 "$(DESTDIR)$(RCDIR)/jaildaemon"

install-service-systemd:
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(UNITDIR)" && sed -e 's|$(DEFAULT_BIN)|$(BINDIR)/jaildaemon|g' dist/linux/jaildaemon.service > "$(DESTDIR)$(UNITDIR)/jaildaemon.service" && chmod 0644 "$(DESTDIR)$(UNITDIR)/jaildaemon.service"

install-service-none:

install-hooks-lxc:
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(HOOKDIR)" && sed -e 's|$(DEFAULT_BIN)|$(BINDIR)/jaildaemon|g' examples/lxc-start-host > "$(DESTDIR)$(HOOKDIR)/lxc-start-host" && chmod 0755 "$(DESTDIR)$(HOOKDIR)/lxc-start-host"

install-hooks-none:

# Files only: the directories may hold other things, or be the system's own.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/jaildaemon" "$(DESTDIR)$(MANDIR)/man8/jaildaemon.8" && case "$(SERVICE)" in rc) rm -f "$(DESTDIR)$(RCDIR)/jaildaemon" ;; systemd) rm -f "$(DESTDIR)$(UNITDIR)/jaildaemon.service" ;; esac && case "$(HOOKS)" in lxc) rm -f "$(DESTDIR)$(HOOKDIR)/lxc-start-host" ;; esac

# The README's test command: on a fresh Debian 12 machine, as root, installs and starts what
# the tests need (dist/test-setup.sh), builds the FreeBSD binary that tests/freebsd.rs checks
# (dist/freebsd-setup.sh), then runs every test, so that none is skipped but what cannot run on
# the machine (machined without systemd as PID 1).
check:
	bash dist/test-setup.sh && bash dist/freebsd-setup.sh && $(CARGO) test

# debhelper's files are made afresh and removed afterwards: only the package stays. The make
# that runs debian/rules is GNU make, which must not read this make's flags (BSD make's).
DEBIAN_RULES = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL debian/rules
deb:
	$(DEBIAN_RULES) clean && DEBDIR="$(DEBDIR)" $(DEBIAN_RULES) binary && $(DEBIAN_RULES) clean

clean:
	$(CARGO) clean

.PHONY: all install install-bin install-man install-service-rc install-service-systemd install-service-none install-hooks-lxc install-hooks-none uninstall check deb clean
