# shellcheck shell=bash
# data_scripts/common.sh — shared by get_mnist.sh, get_cifar10.sh and get_oxford_pets.sh (sourced).
#
#   download_verified URL DEST SHA256 [MIRROR_URL ...]
#       Make DEST a verified copy of URL's file. A DEST already there with the right sha256 is kept
#       (nothing is downloaded). Otherwise the file is fetched into DEST.part, resuming a partial
#       one (curl -C - / wget -c; if the server cannot resume, it starts over), with UVAE_ATTEMPTS
#       tries per URL (default 3) and a pause of UVAE_BACKOFF seconds (default 1) doubled after
#       each failure; MIRROR_URLs are tried in order after URL. DEST appears only once its sha256
#       matches. If every try fails: one message naming the URL and what to do, and exit 1.
#   extract_tar ARCHIVE DIR SHA256 FILE...
#       Unpack ARCHIVE into DIR unless a previous run already did (a marker DIR/.ARCHIVE.done
#       holding SHA256) and every FILE (relative to DIR) still exists.
#
# Tools: curl or wget (DOWNLOADER=curl|wget picks one), sha256sum or shasum -a 256, tar.
# Messages go to stderr and start with the script's name.

UVAE_ATTEMPTS=${UVAE_ATTEMPTS:-3}
UVAE_BACKOFF=${UVAE_BACKOFF:-1}
PROG=${PROG:-$(basename "${0:-data_scripts}")}
# the repository root (this file lives in data_scripts/), and the data folder (DATA_DIR overrides)
UVAE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA_DIR=${DATA_DIR:-$UVAE_ROOT/data}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# The download tool: $DOWNLOADER if set, else curl, else wget.
pick_downloader() {
    local d=${DOWNLOADER:-}
    if [ -n "$d" ]; then
        case $d in curl|wget) ;; *) die "DOWNLOADER='$d': want curl or wget" ;; esac
        command -v "$d" >/dev/null 2>&1 || die "DOWNLOADER=$d, but $d is not installed"
    elif command -v curl >/dev/null 2>&1; then d=curl
    elif command -v wget >/dev/null 2>&1; then d=wget
    else die "neither curl nor wget is installed: install one of them (e.g. apt-get install curl)"
    fi
    printf '%s\n' "$d"
}

# sha256 of a file, lowercase hex.
sha256_of() {
    local out
    if command -v sha256sum >/dev/null 2>&1; then out=$(sha256sum -- "$1") || return 1
    elif command -v shasum >/dev/null 2>&1; then out=$(shasum -a 256 -- "$1") || return 1
    else die "neither sha256sum nor shasum is installed: cannot verify downloads"
    fi
    printf '%s\n' "${out%% *}"
}

# 0 when FILE exists and its sha256 is SHA.
sha256_ok() {
    [ -f "$1" ] || return 1
    local got
    got=$(sha256_of "$1") || return 1
    [ "$got" = "$2" ]
}

# One fetch of URL into OUT, continuing a partial OUT. curl or wget prints its own one-line error.
fetch_once() {
    local tool=$1 url=$2 out=$3
    if [ "$tool" = curl ]; then
        local show=(--silent --show-error)
        [ -t 2 ] && show=(--progress-bar)
        curl --fail --location --connect-timeout 20 "${show[@]}" -C - -o "$out" -- "$url"
    else
        local show=(--no-verbose)
        [ -t 2 ] && show=(--quiet --show-progress)
        wget "${show[@]}" --tries=1 --timeout=20 -c -O "$out" -- "$url"
    fi
}

download_verified() {
    [ $# -ge 3 ] || die "usage: download_verified URL DEST SHA256 [MIRROR_URL ...]"
    local url=$1 dest=$2 sha=$3
    shift 3
    local urls=("$url" "$@") part="$dest.part" tool u try pause status reason=""
    case $sha in
        *[!0-9a-f]*|"") die "download_verified: '$sha' is not a sha256 (64 lowercase hex digits)" ;;
    esac
    [ ${#sha} -eq 64 ] || die "download_verified: '$sha' is not a sha256 (64 lowercase hex digits)"

    if [ -e "$dest" ]; then
        if sha256_ok "$dest" "$sha"; then
            say "ok $dest (already there, sha256 verified)"
            return 0
        fi
        say "$dest is there but its sha256 is wrong: downloading it again"
        rm -f -- "$dest"
    fi
    mkdir -p -- "$(dirname -- "$dest")" || die "cannot create the folder of $dest"
    tool=$(pick_downloader) || exit 1
    for u in "${urls[@]}"; do
        for ((try = 1; try <= UVAE_ATTEMPTS; try++)); do
            if sha256_ok "$part" "$sha"; then break 2; fi   # a complete earlier download
            say "downloading $u (attempt $try/$UVAE_ATTEMPTS, $tool)"
            if fetch_once "$tool" "$u" "$part"; then
                if sha256_ok "$part" "$sha"; then break 2; fi
                reason="the file downloaded, but its sha256 is $(sha256_of "$part"), not $sha"
                say "$reason; starting it again from scratch"
                rm -f -- "$part"
            else
                status=$?
                reason="$tool could not fetch it (exit status $status)"
                if [ "$tool" = curl ] && { [ $status -eq 33 ] || [ $status -eq 36 ]; }; then
                    say "the server cannot resume $part; starting it again from scratch"
                    rm -f -- "$part"
                fi
            fi
            if ((try < UVAE_ATTEMPTS)); then
                pause=$((UVAE_BACKOFF << (try - 1)))
                if ((pause > 0)); then say "retrying in ${pause}s"; sleep "$pause"; fi
            fi
        done
    done
    if sha256_ok "$part" "$sha"; then
        mv -f -- "$part" "$dest" || die "cannot rename $part to $dest"
        say "ok $dest (sha256 verified)"
        return 0
    fi
    [ -s "$part" ] || rm -f -- "$part"   # an empty file left by a failed first try
    {
        printf '%s: error: could not download %s\n' "$PROG" "$url"
        [ $# -gt 0 ] && printf '  (mirrors tried too: %s)\n' "$*"
        printf '  reason: %s, after %d attempt(s) per URL.\n' "${reason:-unknown}" "$UVAE_ATTEMPTS"
        printf '  What to do: check that this machine is online (a proxy needs https_proxy set) and run the\n'
        printf '  script again; it resumes a partial download. Or fetch the file elsewhere, copy it to\n'
        printf '    %s\n' "$dest"
        printf '  and run the script again: it is used if its sha256 is %s.\n' "$sha"
    } >&2
    exit 1
}

extract_tar() {
    [ $# -ge 3 ] || die "usage: extract_tar ARCHIVE DIR SHA256 FILE..."
    local archive=$1 dir=$2 sha=$3 f missing=0
    shift 3
    local marker
    marker="$dir/.$(basename -- "$archive").done"
    for f in "$@"; do [ -e "$dir/$f" ] || missing=1; done
    if [ $missing -eq 0 ] && [ -f "$marker" ] && [ "$(cat -- "$marker")" = "$sha" ]; then
        say "ok $archive already unpacked in $dir"
        return 0
    fi
    say "unpacking $archive into $dir"
    mkdir -p -- "$dir" || die "cannot create $dir"
    tar -xzf "$archive" -C "$dir" || die "could not unpack $archive (a damaged or partial file? delete it and run again)"
    for f in "$@"; do [ -e "$dir/$f" ] || die "$archive did not contain $f: is it the right archive?"; done
    printf '%s\n' "$sha" > "$marker" || die "cannot write $marker"
}
