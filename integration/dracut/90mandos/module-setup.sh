#!/bin/bash
# dracut module for the Mandos client (mandos-py), REFERENCE A17. Install: bash integration/install.
# systemd initrd: password-agent answers systemd's ask-password questions with mandos-client.
# Without systemd: the cmdline hook overrides ask_for_password() to run plugin-runner.

MANDOS_PYTHON="${MANDOS_PYTHON:-/opt/mandos-py/bin/python}"

_mandos_libdir() {
    local d
    for d in /usr/lib/mandos "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)/mandos" /usr/local/lib/mandos; do
        [ -d "$d" ] && { echo "$d"; return 0; }
    done
    return 1
}

_mandos_keydir() {
    local d
    for d in /etc/keys/mandos /etc/mandos/keys; do
        [ -d "$d" ] && { echo "$d"; return 0; }
    done
    return 1
}

check() {
    # Host-only images only (they hold this host's keys), as the reference. Return 0, not 255:
    # dracut unsets $hostonly when a module is asked for by name, so 255 ("only on request")
    # could never be met and the module was never included.
    [[ $hostonly ]] || return 1
    _mandos_libdir >/dev/null && _mandos_keydir >/dev/null && [ -x "$MANDOS_PYTHON" ] || return 1
    return 0
}

depends() {
    echo crypt
}

installkernel() {
    instmods =drivers/net ipv6
}

_mandos_libs() {
    # The shared libraries FILE loads (ldd lists them all, indirect ones included).
    ldd "$1" 2>/dev/null | sed -n 's|.*=> \(/[^ ]*\) .*|\1|p'
}

_mandos_python() {
    local f libs=()
    "$MANDOS_PYTHON" -I "$(_mandos_libdir)/python-files" "$initdir" > "$initdir/.mandos-exec-list"
    while read -r f; do
        inst "$f" "$f"
        libs+=($(_mandos_libs "$f"))
    done < "$initdir/.mandos-exec-list"
    rm -f "$initdir/.mandos-exec-list"
    # dracut-install follows the libraries of executable files only, and Python's extension
    # modules and libgnutls are 0644: without this, _ctypes finds no libffi in the image and
    # libgnutls none of nettle, hogweed, tasn1... (found by booting a dracut image).
    [ ${#libs[@]} -eq 0 ] || inst_multiple $(printf '%s\n' "${libs[@]}" | sort -u)
}

_mandos_ids() {
    local user group
    user="$(getent passwd _mandos | cut -d: -f3)"
    group="$(getent passwd _mandos | cut -d: -f4)"
    echo "${user:-65534} ${group:-65534}"
}

install() {
    local libdir keydir key user group opts=()
    libdir="$(_mandos_libdir)"
    keydir="$(_mandos_keydir)"
    read -r user group <<< "$(_mandos_ids)"
    _mandos_python
    inst_multiple gpg gpg-agent gpgconf
    inst_dir /etc/mandos/keys
    for key in pubkey.txt seckey.txt tls-pubkey.pem tls-privkey.pem dhparams.pem; do
        [ -e "$keydir/$key" ] || continue
        inst_simple "$keydir/$key" "/etc/mandos/keys/$key"
        chown "$user:$group" "$initdir/etc/mandos/keys/$key"
        chmod 0600 "$initdir/etc/mandos/keys/$key"
    done
    chmod 1777 "$initdir/tmp" 2>/dev/null || true
    [ "$user" != 65534 ] && opts+=("--user=$user")
    [ "$group" != 65534 ] && opts+=("--group=$group")
    if dracut_module_included "systemd"; then
        inst_simple "$libdir/password-agent" /lib/mandos/password-agent
        inst_simple "$libdir/mandos-client" /lib/mandos/mandos-client
        chmod 0755 "$initdir/lib/mandos/mandos-client" "$initdir/lib/mandos/password-agent"
        inst_simple "$moddir/ask-password-mandos.path" "$systemdsystemunitdir/ask-password-mandos.path"
        inst_simple "$moddir/ask-password-mandos.service" "$systemdsystemunitdir/ask-password-mandos.service"
        mkdir -p "$initdir$systemdsystemunitdir/sysinit.target.wants"
        ln -sf ../ask-password-mandos.path "$initdir$systemdsystemunitdir/sysinit.target.wants/ask-password-mandos.path"
        # The module's own options go in variables of their own: an admin's drop-in setting
        # PASSWORD_AGENT_OPTIONS or MANDOS_CLIENT_OPTIONS then adds to them, not replaces them.
        local dropins="$initdir$systemdsystemunitdir/ask-password-mandos.service.d"
        mkdir -p "$dropins"
        {
            echo "[Service]"
            [ ${#opts[@]} -gt 0 ] && echo "Environment=\"MANDOS_MODULE_AGENT_OPTIONS=${opts[*]}\""
            [ -e "$keydir/dhparams.pem" ] &&
                echo "Environment=MANDOS_MODULE_CLIENT_OPTIONS=--dh-params=/etc/mandos/keys/dhparams.pem"
        } > "$dropins/00-mandos-ids.conf"
        local f
        for f in /etc/systemd/system/ask-password-mandos.service.d/*.conf; do
            if [ -f "$f" ]; then inst_simple "$f" "$systemdsystemunitdir/ask-password-mandos.service.d/${f##*/}"; fi
        done
    else
        "$MANDOS_PYTHON" -I -m mandos.plugins.layout "$initdir/lib/mandos/plugins.d" \
            "$initdir/lib/mandos/plugin-helpers" >/dev/null
        rm -f "$initdir/lib/mandos/plugins.d/askpass-fifo"
        inst_simple "$libdir/plugin-runner" /lib/mandos/plugin-runner
        {
            echo "--options-for=mandos-client:--pubkey=/etc/mandos/keys/pubkey.txt,--seckey=/etc/mandos/keys/seckey.txt,--tls-pubkey=/etc/mandos/keys/tls-pubkey.pem,--tls-privkey=/etc/mandos/keys/tls-privkey.pem"
            [ "$user" != 65534 ] && echo "--userid=$user"
            [ "$group" != 65534 ] && echo "--groupid=$group"
            [ -e "$keydir/dhparams.pem" ] &&
                echo "--options-for=mandos-client:--dh-params=/etc/mandos/keys/dhparams.pem"
            [ -r /etc/mandos/plugin-runner.conf ] && cat /etc/mandos/plugin-runner.conf
        } > "$initdir/etc/mandos/plugin-runner.conf"
        inst_hook cmdline 20 "$moddir/cmdline-mandos.sh"
        inst_multiple flock
    fi
}
