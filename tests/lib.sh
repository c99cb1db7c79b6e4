# lib.sh: the outcome helpers of the shell tests (test_cli.sh, test_mdns.sh).
# Source it; it sets passed=0 failed=0.
#
#   ok WHAT                    one more passed: "ok - WHAT"
#   not_ok WHAT [DETAIL...]    one more failed: "not ok - WHAT", then each
#                              line of each DETAIL as "#   line"
#   check WHAT STATUS [DETAIL...]
#                              ok WHAT if STATUS is 0, else not_ok with the
#                              details, and then what the function named by
#                              $CHECK_DETAILS prints, if it is set
#   summary                    "N passed, N failed"; its status is 0 when
#                              nothing failed

passed=0
failed=0
CHECK_DETAILS=${CHECK_DETAILS:-}

ok() {
    passed=$((passed + 1))
    echo "ok - $1"
}

not_ok() {
    local line
    failed=$((failed + 1))
    echo "not ok - $1"
    shift
    for line in "$@"; do
        printf '%s\n' "$line" | sed 's/^/#   /'
    done
}

check() {
    local what=$1 status=$2
    shift 2
    if [ "$status" -eq 0 ]; then
        ok "$what"
    elif [ -n "$CHECK_DETAILS" ]; then
        not_ok "$what" "$@" "$("$CHECK_DETAILS")"
    else
        not_ok "$what" "$@"
    fi
}

summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
