#!/bin/sh
# mandos-py, non-systemd dracut: make dracut's ask_for_password() run plugin-runner (REFERENCE A17).
getargbool 1 mandos || return 0
cat >> /lib/dracut-crypt-lib.sh <<'OVERRIDE'
ask_for_password() {
    local cmd prompt="" tries=3 ply_cmd tty_cmd ply_prompt tty_prompt
    while [ $# -gt 0 ]; do
        case "$1" in
            --cmd) cmd="$2"; shift ;;
            --prompt) prompt="$2"; shift ;;
            --tries) tries="$2"; shift ;;
            --ply-*|--tty-*) case "$1" in --ply-cmd|--tty-cmd|--ply-prompt|--tty-prompt|--ply-tries|--tty-tries) shift ;; esac ;;
        esac
        shift
    done
    # "cryptsetup luksOpen SOURCE NAME ..." as dracut builds it: take the source and the name.
    set -- $cmd
    local src="" name=""
    while [ $# -gt 0 ]; do
        case "$1" in luksOpen|open) src="$2"; name="$3"; break ;; esac
        shift
    done
    local opts=""
    [ -n "$prompt" ] && opts="--options-for=password-prompt:--prompt=$prompt --options-for=plymouth:--prompt=$prompt"
    {
        flock -s 9
        CRYPTTAB_SOURCE="$src" cryptsource="$src" CRYPTTAB_NAME="$name" crypttarget="$name" \
            /lib/mandos/plugin-runner --config-file=/etc/mandos/plugin-runner.conf $opts \
            | eval "$cmd"
    } 9>/.console_lock
}
OVERRIDE
