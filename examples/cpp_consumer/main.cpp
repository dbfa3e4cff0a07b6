// A syncline server declared in C++: a typed model, a consumer that overrides DRF-style hooks and adds custom actions
// (one detached), and the server.
// Run: build/bin/syncline_example_cpp [PORT] [DATABASE]   (defaults: 8000, example.db)
//      build/bin/syncline_example_cpp --self-check DATABASE   (a short end-to-end check on a free port: self_check.hpp)
// Built in the tree (examples/CMakeLists.txt) or on its own against an installed syncline (CMakeLists.txt here).
// Then, from any DCRF client: {"action": "create", "data": {"title": "Hello"}, "request_id": 1} on
// ws://127.0.0.1:PORT/ws/posts/ Custom actions: {"action": "unpublish", "pk": 1, "request_id": 2} and {"action":
// "word_count", "request_id": 3}.

#include <syncline/core/consumer/consumer.hpp>
#include <syncline/core/model/model.hpp>
#include <syncline/transport/server.hpp>

#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "self_check.hpp"

struct Post {
    std::int64_t id = 0;
    std::string title;
    std::string body;
    std::string author;
    bool published = false;
};

template <>
struct syncline::ModelMeta<Post> {
    static constexpr std::string_view kTable = "posts";
    static auto Fields() {
        using syncline::Field;
        using syncline::FieldOptions;
        return syncline::Fields(Field("id", &Post::id, FieldOptions().PrimaryKey()),
                                Field("title", &Post::title, FieldOptions().MaxLength(100)),
                                Field("body", &Post::body, FieldOptions().Blank().Default("")),
                                Field("author", &Post::author, FieldOptions().MaxLength(50).Blank().Default("")),
                                Field("published", &Post::published, FieldOptions().Default(false)));
    }
};

// Everything DRF's ModelViewSet offers, with two hooks overridden: unpublished posts are hidden from every action,
// and a post created without an author is signed "anonymous". Plus two custom actions.
class PostConsumer : public syncline::ModelConsumer {
public:
    PostConsumer() : syncline::ModelConsumer(Options()) {
        // {"action": "unpublish", "pk": 1}: the dispatcher looks the row up first (400 without pk, 404 when hidden).
        AddAction(syncline::CustomAction("unpublish", Unpublish).NeedsObject().Writes());
        // {"action": "word_count"}: reads every post on the server's executor, so the socket's other requests are
        // answered meanwhile; it stops early when the socket closes.
        AddAction(syncline::CustomAction("word_count", WordCount).Detached());
    }

    syncline::Row PerformCreate(const syncline::ActionRequest& request, const syncline::Assignments& values) override {
        syncline::Assignments signed_values = values;
        bool has_author = false;
        for (auto& [field, value] : signed_values) {
            if (field == "author" && value.kind() == syncline::Value::Kind::kText && !value.AsText().empty()) {
                has_author = true;
            }
        }
        if (!has_author) signed_values.emplace_back("author", "anonymous");
        signed_values.emplace_back("published", true);
        return syncline::ModelConsumer::PerformCreate(request, signed_values);
    }

private:
    static syncline::ActionResult Unpublish(syncline::GenericConsumer& consumer, syncline::ActionRequest& request) {
        const syncline::Value& pk = request.object().at(consumer.schema().pk_index());
        consumer.store().Patch(consumer.options().model, pk, {{"published", false}});
        return syncline::ActionResult::Ok(200, "{\"unpublished\":" + std::to_string(pk.AsInteger()) + "}");
    }

    static syncline::ActionResult WordCount(syncline::GenericConsumer& consumer, syncline::ActionRequest& request) {
        std::size_t body = consumer.schema().FieldIndex("body").value();
        std::int64_t posts = 0;
        std::int64_t words = 0;
        syncline::Query everything = consumer.GetQueryset(request);
        for (const syncline::Row& row : consumer.store().List(consumer.options().model, everything)) {
            if (request.cancelled()) return syncline::ActionResult::Message(499, "cancelled");  // never sent
            std::istringstream text(row.at(body).AsText());
            for (std::string word; text >> word;) ++words;
            ++posts;
        }
        return syncline::ActionResult::Ok(
            200, "{\"posts\":" + std::to_string(posts) + ",\"words\":" + std::to_string(words) + "}");
    }

    static syncline::ConsumerOptions Options() {
        syncline::ConsumerOptions o;
        o.model = std::string(syncline::ModelMeta<Post>::kTable);
        o.queryset = {syncline::Filter{"published", syncline::FilterOp::kExact, true, {}}};
        o.serializer.fields = {"id", "title", "body", "author"};
        o.serializer.read_only = {"id"};
        return o;
    }
};

int main(int argc, char** argv) {
    const bool self_check = argc > 1 && std::string(argv[1]) == "--self-check";
    syncline::transport::ServerOptions options;
    options.port = static_cast<std::uint16_t>(self_check ? 0 : argc > 1 ? std::atoi(argv[1]) : 8000);
    options.database = argc > 2 ? argv[2] : "example.db";
    syncline::transport::Server server(options);
    server.Model<Post>();
    server.Route<PostConsumer>("/ws/posts/");
    if (self_check) return self_check::Run(server, "/ws/posts/");
    return server.Run();  // SIGTERM drains connections and exits 0
}
