// Produce a batch of records, then read them back as a consumer group member.
// Usage: swift run SluiceExample [http://127.0.0.1:9400]
import Foundation
import Sluice

let url = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "http://127.0.0.1:9400"

do {
    let client = try await SluiceClient.connect(url: url)
    let admin = client.admin()
    do {
        _ = try await admin.createTopic(name: "orders", partitions: 3, configs: [:])
    } catch SluiceError.Broker(let code, _) where code == "topic_exists" {
        // Already there.
    }

    // One call across the boundary for the whole batch.
    let producer = try client.producer(options: ProducerOptions())
    let records = (0..<100).map { i in
        ProducerRecord(topic: "orders", value: Data("order \(i)".utf8), key: Data("user-\(i % 10)".utf8))
    }
    let sent = try await producer.sendBatch(records: records)
    print("sent \(sent.count) records; the first went to partition \(sent[0].partition) at offset \(sent[0].offset ?? 0)")
    try await producer.close()

    let consumer = try await client.consumer(options: ConsumerOptions(
        topics: ["orders"], group: "billing", start: .earliest, autoCommit: false))
    var seen = 0
    while seen < 100 {
        let batch = try await consumer.pollBatch(max: 500, timeoutMs: 1000)
        for record in batch {
            print("\(record.partition)/\(record.offset): \(String(decoding: record.value ?? Data(), as: UTF8.self))")
        }
        seen += batch.count
    }
    try await consumer.commit()
    try await consumer.close()
    client.close()
} catch let error as SluiceError {
    print("sluice error: \(error)")
    exit(1)
}
