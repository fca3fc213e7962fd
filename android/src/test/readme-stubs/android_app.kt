@file:Suppress("unused", "UNUSED_PARAMETER")

package android.app

import android.content.Context

open class Application : Context() {
    open fun onCreate() {}
}

class Notification

class NotificationChannel(id: String, name: CharSequence, importance: Int)

abstract class NotificationManager {
    abstract fun createNotificationChannel(channel: NotificationChannel)

    companion object {
        const val IMPORTANCE_LOW: Int = 2
    }
}
