// Produce a batch of records, then read them back as a consumer group member.
// Usage: gradle run --args="http://127.0.0.1:9400"
import dev.sluice.*
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>) = runBlocking {
    val url = args.firstOrNull() ?: "http://127.0.0.1:9400"
    // `use` closes the native objects at once instead of waiting for the garbage collector.
    SluiceClient.connect(url).use { client ->
        val admin = client.admin()
        try {
            admin.createTopic("orders", 3u, emptyMap())
        } catch (e: SluiceException.Broker) {
            if (e.code != "topic_exists") throw e
        }

        // One call across the boundary for the whole batch.
        client.producer(ProducerOptions()).use { producer ->
            val records = (0 until 100).map { i ->
                ProducerRecord(topic = "orders", value = "order $i".toByteArray(), key = "user-${i % 10}".toByteArray())
            }
            val sent = producer.sendBatch(records)
            println("sent ${sent.size} records; the first went to partition ${sent[0].partition} at offset ${sent[0].offset}")
            producer.close()
        }

        client.consumer(ConsumerOptions(topics = listOf("orders"), group = "billing",
                                        start = StartPosition.Earliest, autoCommit = false)).use { consumer ->
            var seen = 0
            while (seen < 100) {
                val batch = consumer.pollBatch(500u, 1000uL)
                batch.forEach { println("${it.partition}/${it.offset}: ${it.value?.decodeToString()}") }
                seen += batch.size
            }
            consumer.commit()
            consumer.close()
        }
        client.close()
    }
}
