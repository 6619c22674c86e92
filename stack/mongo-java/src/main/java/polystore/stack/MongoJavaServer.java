package polystore.stack;

import java.util.List;
import java.util.concurrent.CountDownLatch;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

/**
 * The fallback MongoDB-wire server: mongo-java-server's in-memory backend on
 * 127.0.0.1:PORT until SIGTERM. Usage: {@code MongoJavaServer PORT}.
 */
public final class MongoJavaServer {
    private MongoJavaServer() {}

    /**
     * Report MongoDB 4.4 (wire version 9): mongo-java-server 1.47 reports wire version 8
     * even for its MONGO_5_0 setting, and current pymongo refuses anything below 9.
     */
    private static final MongoVersion MONGO_4_4 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    public static void main(String[] args) throws Exception {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 27027;
        MongoServer server = new MongoServer(new MemoryBackend().version(MONGO_4_4));
        server.bind("127.0.0.1", port);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("polystore-mongo-java: shutting down");
            server.shutdownNow();
            stopped.countDown();
        }, "polystore-mongo-java-shutdown"));
        System.out.println("polystore-mongo-java: ready, mongodb://127.0.0.1:" + port);
        System.out.flush();
        stopped.await();
    }
}
