package app.handover

/**
 * Personal data (a name, an address, the last digits of a mobile number) or
 * text that holds a code (a handover event's body). Read [value] to show it
 * on screen; [toString] never shows it, so a log line, a crash report or a
 * `data class`'s `toString()` that includes it leaks nothing.
 */
class Sensitive(val value: String) {
    override fun toString(): String = "Sensitive(${value.length} chars)"

    override fun equals(other: Any?): Boolean = other is Sensitive && other.value == value

    override fun hashCode(): Int = value.hashCode()
}
